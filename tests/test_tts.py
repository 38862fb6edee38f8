import pytest
import torch

from fluxir_hub.tts import IQAReward, TTSConfig

from .helpers import gen, photo


def brightness(images, lq):
    return images.mean(dim=(1, 2, 3))


def test_one_candidate_is_exactly_the_plain_pipeline(tiny_pipe):
    lq = photo(size=(32, 32))
    plain = tiny_pipe(lq, generator=gen(3), output_type="pt", num_inference_steps=4, upscale=2)
    single = tiny_pipe(lq, generator=gen(3), output_type="pt", num_inference_steps=4, upscale=2,
                       tts=TTSConfig(num_candidates=1, branch_steps=[0, 1], reward=brightness))  # fmt: skip
    assert torch.equal(plain.images, single.images)
    assert single.nfe == plain.nfe == 4 and single.tts_rewards is None


def test_search_raises_the_reward_over_seeds(tiny_pipe):
    lq = photo("camera", size=(32, 32))
    # decoded at full size, the estimate at the last branching step is the final image itself
    tts = TTSConfig(num_candidates=4, branch_steps=[0, 1, 2], mspde_steps=1, reward=brightness, decode_scale=1.0)
    wins = 0
    for seed in range(4):
        kwargs = {
            "generator": gen(seed),
            "output_type": "pt",
            "num_inference_steps": 4,
            "upscale": 2,
            "color_fix": "none",
        }
        plain = tiny_pipe(lq, **kwargs).images
        searched = tiny_pipe(lq, **{**kwargs, "generator": gen(seed)}, tts=tts)
        wins += int(brightness(searched.images, None) > brightness(plain, None))
        assert len(searched.tts_rewards[0]) == 3
    assert wins >= 3


@pytest.mark.parametrize("steps, n, branches, k", [(4, 3, [0, 2], 2), (6, 2, None, 1), (5, 4, [1], 3)])
def test_reported_nfe_matches_the_formula(tiny_pipe, steps, n, branches, k):
    tts = TTSConfig(num_candidates=n, branch_steps=branches, mspde_steps=k, reward=brightness)
    out = tiny_pipe(photo(size=(16, 16)), generator=gen(), num_inference_steps=steps, upscale=2, tts=tts)
    n_branches = len(branches) if branches is not None else max(1, steps // 4)
    assert out.nfe == steps + n_branches * ((n - 1) + n * k) == tts.expected_nfe(steps)


def test_counted_transformer_calls_equal_nfe(tiny_pipe):
    calls = []
    hook = tiny_pipe.transformer.register_forward_hook(lambda *args: calls.append(1))
    try:
        out = tiny_pipe(photo(size=(16, 16)), generator=gen(), num_inference_steps=4, upscale=2,
                        tts=TTSConfig(num_candidates=3, branch_steps=[0, 1], mspde_steps=2, reward=brightness))  # fmt: skip
    finally:
        hook.remove()
    assert len(calls) == out.nfe == 4 + 2 * (2 + 3 * 2)


def test_deterministic_batched_and_tiled(tiny_pipe):
    a, b = photo("astronaut", (32, 32)), photo("chelsea", (32, 32))
    tts = TTSConfig(num_candidates=3, branch_steps=[0], mspde_steps=1, reward=brightness)
    kwargs = {"output_type": "pt", "num_inference_steps": 3, "upscale": 2, "tts": tts, "tile_size": 64, "tile_overlap": 16,
              "restoration_weight": 0.1}  # fmt: skip
    first = tiny_pipe([a, b], generator=[gen(1), gen(2)], **kwargs)
    second = tiny_pipe([a, b], generator=[gen(1), gen(2)], **kwargs)
    assert torch.equal(first.images, second.images)
    assert len(first.tts_rewards) == 2 and all(len(r) == 1 for r in first.tts_rewards)


def test_iqa_reward_offline_prefers_the_faithful_image():
    reward = IQAReward(metrics={"piqe": 1.0, "entropy": 1.0}, fidelity_weight=5.0, device="cpu")
    lq = photo("coffee", (64, 64))
    lq_t = torch.from_numpy(__import__("numpy").asarray(lq) / 255.0).permute(2, 0, 1)[None].float()
    faithful = lq_t.clone()
    wrong = lq_t.flip(-1).flip(-2)  # same statistics, wrong content
    scores = reward(torch.cat([faithful, wrong]), torch.cat([lq_t, lq_t]))
    assert scores.shape == (2,) and scores[0] > scores[1]


def test_bad_tts_settings(tiny_pipe):
    for tts, name in [(TTSConfig(num_candidates=0), "num_candidates"), (TTSConfig(mspde_steps=0), "mspde_steps"),
                      (TTSConfig(branch_steps=[3]), "branch_steps"), (TTSConfig(decode_scale=0), "decode_scale")]:  # fmt: skip
        with pytest.raises(ValueError, match=name):
            tiny_pipe(photo(size=(16, 16)), num_inference_steps=4, upscale=2, tts=tts)
    with pytest.raises(ValueError, match="normalisation range"):
        IQAReward(metrics={"mystery": 1.0})
