import pytest
import torch

from fluxir_hub.tts import IQAReward, TTSConfig

from .helpers import gen, photo


def brightness(images, lq):
    return images.mean(dim=(1, 2, 3))


def test_the_default_search_is_paper_003s_zero_drift_kicks():
    """Re-noised candidates at s = 1 are fresh noise (restarts); the paper kicks the current latent. Measured on the
    mini model (README): zero-drift beats plain sampling more often on its verifier."""
    assert TTSConfig().perturbation == "zero_drift"


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


@pytest.mark.parametrize(
    "settings",
    [
        {"num_candidates": 4, "beam_width": 2, "branch_steps": [0, 2], "mspde_steps": 1},
        {"num_candidates": 4, "beam_width": 2, "branch_steps": [1], "mspde_steps": 2, "mspde_mode": "partial"},
        {"num_candidates": 3, "branch_steps": [0, 1], "mspde_steps": 2, "perturbation": "zero_drift"},
        {
            "num_candidates": 6,
            "beam_width": 3,
            "branch_steps": [0],
            "mspde_steps": 1,
            "mspde_mode": "partial",
            "perturbation": "zero_drift",
            "noise_scale": 0.5,
        },
    ],
)
def test_beam_zero_drift_and_partial_estimates_count_every_transformer_call(tiny_pipe, settings):
    rows = []  # a beam's survivors share one batched call: count the evaluations (rows) it makes per image
    hook = tiny_pipe.transformer.register_forward_hook(lambda module, args, output: rows.append(output[0].shape[0]))
    tts = TTSConfig(reward=brightness, **settings)
    try:
        out = tiny_pipe([photo("astronaut", (16, 16)), photo("coffee", (16, 16))], generator=[gen(1), gen(2)],
                        num_inference_steps=4, upscale=2, tts=tts, output_type="pt")  # fmt: skip
    finally:
        hook.remove()
    assert sum(rows) / 2 == out.nfe == tts.expected_nfe(4)  # two images: evaluations per image
    assert out.images.shape == (2, 3, 32, 32) and all(len(r) == len(settings["branch_steps"]) for r in out.tts_rewards)


def test_beam_search_is_deterministic_and_a_beam_of_one_is_the_greedy_search(tiny_pipe):
    lq = photo("camera", (32, 32))
    kwargs = {"output_type": "pt", "num_inference_steps": 4, "upscale": 2, "color_fix": "none"}
    beam = TTSConfig(num_candidates=4, beam_width=2, branch_steps=[0, 1], mspde_steps=1, reward=brightness)
    first = tiny_pipe(lq, generator=gen(5), tts=beam, **kwargs)
    assert torch.equal(first.images, tiny_pipe(lq, generator=gen(5), tts=beam, **kwargs).images)
    greedy = TTSConfig(num_candidates=4, branch_steps=[0, 1], mspde_steps=1, reward=brightness)
    one = TTSConfig(num_candidates=4, beam_width=1, branch_steps=[0, 1], mspde_steps=1, reward=brightness)
    assert torch.equal(tiny_pipe(lq, generator=gen(5), tts=greedy, **kwargs).images,
                       tiny_pipe(lq, generator=gen(5), tts=one, **kwargs).images)  # fmt: skip


def test_rank_ensemble_combines_by_mean_rank_and_breaks_ties_by_index():
    from fluxir_hub.tts import rank_scores

    # verifier A: candidates 0 and 1 tie (0 ranks first); verifier B prefers 1, then 2
    scores = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]]).view(2, 3, 1)
    combined = rank_scores(scores)[:, 0]
    assert combined.tolist() == [-1.0, -0.5, -1.5]  # mean ranks 1, 0.5, 1.5: candidate 1 wins
    assert rank_scores(torch.zeros(3, 4, 2)).argmax(0).tolist() == [0, 0]  # all tied: the first candidate
    # scales do not matter: multiplying one verifier by 1000 changes nothing
    scaled = scores.clone()
    scaled[0] *= 1000
    assert torch.equal(rank_scores(scaled), combined.view(3, 1).expand(3, 1))


def test_rank_ensemble_runs_in_the_pipeline(tiny_pipe):
    darkness = lambda images, lq: -images.mean(dim=(1, 2, 3))  # noqa: E731
    tts = TTSConfig(num_candidates=3, branch_steps=[0], mspde_steps=1, verifiers=[brightness, darkness, brightness])
    out = tiny_pipe(photo(size=(16, 16)), generator=gen(), num_inference_steps=3, upscale=2, tts=tts)
    assert out.nfe == tts.expected_nfe(3) and out.tts_rewards[0][0] <= 0  # a (negated) mean rank


def test_bad_search_settings_name_the_setting(tiny_pipe):
    cases = [
        (TTSConfig(num_candidates=2, beam_width=3), "`tts.beam_width` \\(3\\) is larger than `tts.num_candidates`"),
        (TTSConfig(num_candidates=4, beam_width=3), "must be a multiple of `tts.beam_width`"),
        (TTSConfig(mspde_mode="partial", mspde_steps=4, branch_steps=[1]), "`tts.mspde_steps` \\(4\\) is larger than"),
        (TTSConfig(perturbation="gaussian"), "`tts.perturbation` must be one of"),
        (TTSConfig(noise_scale=-1.0), "`tts.noise_scale`"),
        (TTSConfig(verifiers=[]), "`tts.verifiers` is empty"),
    ]
    for tts, message in cases:
        with pytest.raises(ValueError, match=message):
            tiny_pipe(photo(size=(16, 16)), num_inference_steps=4, upscale=2, tts=tts)
