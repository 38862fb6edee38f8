"""The conditioning zoo (paper 003 §1): UMMF, its direct-addition ablation and DRA's restoration adapter beside the
FluxIR adapter, through one denoising loop; training, saving, loading and refusals on the tiny stack."""

import json

import numpy as np
import pytest
import torch

from fluxir_hub import FluxIRAdapter
from fluxir_hub.models.adapter_dra import DRAAdapter
from fluxir_hub.models.conditioning_ummf import UMMF_LORA_TARGETS, UMMFConditioner, lora_parameter_count
from fluxir_hub.testing import tiny_pipeline, tiny_transformer
from training.trainer import Trainer

from .helpers import gen, make_pairs_folder, photo
from .test_distill import _config


def _call(pipe, component, lq_seed=0):
    """One conditioned velocity with the pipeline's own `predict_velocity`, for an LQ drawn from `lq_seed`."""
    pipe.register_modules(adapter=component)
    component.install(pipe.transformer)
    latents = torch.randn(1, 4, 64, generator=gen(1))
    lq = torch.randn(1, 4, 64, generator=gen(lq_seed))
    embeds, pooled, txt_ids = pipe.encode_prompt([""], device=torch.device("cpu"), max_sequence_length=32)
    pipe._joint_attention_kwargs = None
    return pipe.predict_velocity(latents, lq, torch.full((1,), 0.6), embeds, pooled, txt_ids, torch.full((1,), 3.5),
                                 token_height=2, token_width=2)  # fmt: skip


def test_ummf_appends_lq_tokens_at_shared_positions_and_drops_them_from_the_output():
    pipe = tiny_pipeline()
    ummf = UMMFConditioner.from_transformer(pipe.transformer, max_sequence_length=32)
    base = {"hidden_states": torch.zeros(2, 4, 64), "img_ids": torch.arange(12.0).view(4, 3), "timestep": 0}
    kwargs, finish = ummf.prepare_base_call(base, torch.ones(2, 4, 64))
    assert kwargs["hidden_states"].shape == (2, 8, 64) and torch.equal(
        kwargs["hidden_states"][:, 4:], torch.ones(2, 4, 64)
    )
    assert torch.equal(kwargs["img_ids"][:4], kwargs["img_ids"][4:])  # the LQ token i sits where output token i does
    assert finish(torch.arange(16.0).view(2, 8, 1)).shape == (2, 4, 1)
    out = _call(pipe, ummf)
    assert out.shape == (1, 4, 64) and not torch.allclose(out, _call(pipe, ummf, lq_seed=5))  # the LQ is attended to
    add = UMMFConditioner.from_transformer(pipe.transformer, mode="add", max_sequence_length=32)
    assert not torch.allclose(_call(pipe, add), _call(pipe, add, lq_seed=5))
    with pytest.raises(ValueError, match="`mode` must be one of"):
        UMMFConditioner(mode="concat")


def test_dra_starts_as_the_plain_base_and_its_stages_sit_after_every_fourth_block():
    pipe = tiny_pipeline()
    dra = DRAAdapter.from_transformer(pipe.transformer, adapter_dim=16, every=2, max_sequence_length=32)
    blocks = len(pipe.transformer.transformer_blocks) + len(pipe.transformer.single_transformer_blocks)
    assert len(dra.stages) == blocks // 2 and [dra.stage_of_block(i) for i in range(4)] == [None, 0, None, 1]
    torch.manual_seed(0)
    for stage in dra.stages:  # give the zero-initialised outputs a value: now the LQ matters
        torch.nn.init.normal_(stage.out.weight, std=0.02)
    assert not torch.allclose(_call(pipe, dra, lq_seed=0), _call(pipe, dra, lq_seed=5))
    # gradients reach the LQ embedding and every stage through the base's forward
    dra.zero_grad()
    _call(pipe, dra).pow(2).mean().backward()
    assert dra.lq_embedder.weight.grad is not None and all(s.entry.fc1.weight.grad is not None for s in dra.stages)


def test_dra_output_at_initialisation_equals_the_base():
    pipe = tiny_pipeline()
    dra = DRAAdapter.from_transformer(pipe.transformer, adapter_dim=16, every=2, max_sequence_length=32)
    with_dra = _call(pipe, dra)
    latents = torch.randn(1, 4, 64, generator=gen(1))
    embeds, pooled, txt_ids = pipe.encode_prompt([""], device=torch.device("cpu"), max_sequence_length=32)
    plain = pipe.predict_velocity(latents, torch.randn(1, 4, 64, generator=gen(0)), torch.full((1,), 0.6), embeds, pooled,
                            txt_ids, torch.full((1,), 3.5), token_height=2, token_width=2, conditioning_scale=0)  # fmt: skip
    assert torch.allclose(with_dra, plain, atol=1e-6)  # zero-initialised outputs: training starts from the base


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_pairs_folder(tmp_path_factory.mktemp("zoo") / "fluxgen", size=(128, 128))


@pytest.mark.parametrize("conditioning", ["ummf", "ummf-add", "dra"])
def test_training_saves_a_component_the_pipeline_loads_with_one_call(pairs, tmp_path, conditioning):
    out = tmp_path / conditioning
    extra = {"conditioning_options": {"adapter_dim": 16}} if conditioning == "dra" else {}
    Trainer(_config(pairs, out, conditioning=conditioning, max_train_steps=2, learning_rate=1e-2, **extra)).train()
    assert (out / "config.json").exists() and not (out / "pytorch_lora_weights.safetensors").exists()  # one file
    pipe = tiny_pipeline()
    before = pipe(photo("chelsea", (32, 32)), num_inference_steps=2, generator=gen(0)).images[0]
    pipe.load_conditioning(out)
    kind = DRAAdapter if conditioning == "dra" else UMMFConditioner
    assert isinstance(pipe.adapter, kind) and not getattr(pipe.transformer, "peft_config", None)
    assert conditioning != "dra" or pipe.adapter.config.adapter_dim == 16  # its options reached the component
    assert any(w.abs().sum() > 0 for w in pipe.adapter.lora.up.parameters())  # its trained LoRA came with it
    after = pipe(photo("chelsea", (32, 32)), num_inference_steps=2, generator=gen(0)).images[0]
    assert after.size == before.size == (128, 128) and not np.array_equal(np.asarray(before), np.asarray(after))
    with pytest.raises(ValueError, match=f"holds .*{kind.__name__}.*not a FluxIRAdapter"):
        FluxIRAdapter.from_pretrained(out)  # the wrong kind: named, with how to load it
    if conditioning == "ummf":
        # a LoRA made for another base: the geometry is named before any weight is touched
        bad = tmp_path / "bad"
        UMMFConditioner.from_transformer(tiny_transformer(), max_sequence_length=32).save_pretrained(bad)
        config = json.loads((bad / "config.json").read_text())
        config["num_layers"] += 1
        (bad / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match="num_layers: UMMFConditioner expects"):
            pipe.load_conditioning(bad)


def test_zoo_refusals_name_the_setting(pairs, tmp_path):
    cases = [
        ({"conditioning": "controlnet"}, "`conditioning` must be fluxir, ummf, ummf-add or dra"),
        ({"conditioning": "ummf", "stage": "rl", "adapter_init": "x"}, "works with `--conditioning fluxir` only"),
        ({"conditioning": "dra", "gradient_checkpointing": True}, "needs `--gradient_checkpointing false`"),
        ({"conditioning": "ummf", "use_lora": True}, "brings its own LoRA"),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            _config(pairs, tmp_path, **change).validate()


def test_full_size_trainable_parameters():
    """Counted on the meta device at FLUX.1-dev size (the paper: UMMF about 58M; DRA 80M on SD3)."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        base = FluxTransformer2DModel(guidance_embeds=True)
        dra = DRAAdapter.from_transformer(base)
    assert lora_parameter_count(base, UMMF_LORA_TARGETS, 16) == 65_372_160
    lora = sum(p.numel() for p in dra.lora.parameters())
    assert len(dra.stages) == 14 and sum(p.numel() for p in dra.parameters()) - lora == 75_860_928
    assert (
        lora == 37_355_520
    )  # its LoRA diffusion adapter, r32 on the attention projections, now held in the component
    # the output layer is not a block projection: the regex leaves it out
    assert (
        lora_parameter_count(base, UMMF_LORA_TARGETS, 1) < lora_parameter_count(base, ["proj_out", "to_q"], 1) + 10**7
    )


def test_captioner_steers_when_no_prompt_is_given(monkeypatch):
    pipe = tiny_pipeline()
    seen = []
    encode = pipe.encode_prompt
    monkeypatch.setattr(
        pipe, "encode_prompt", lambda prompt, *a, **k: (seen.append(prompt), encode(prompt, *a, **k))[1]
    )
    pipe(photo("coffee", (32, 32)), num_inference_steps=1, captioner=lambda image: f"a {image.width} px photo")
    assert seen[-1] == ["a 32 px photo"]
    pipe(photo("coffee", (32, 32)), prompt="given", num_inference_steps=1, captioner=lambda image: "unused")
    assert seen[-1] == ["given"]


def test_cards_of_the_other_conditionings_say_what_they_are_and_how_to_load(pairs, tmp_path):
    from training.hub import write_model_card

    ummf = write_model_card(tmp_path / "u", _config(pairs, tmp_path, conditioning="ummf"), steps=3).read_text()
    assert (
        "UMMF restoration LoRA" in ummf and "pipe.load_conditioning(" in ummf and "FluxIRAdapter.from_pre" not in ummf
    )
    dra = write_model_card(tmp_path / "d", _config(pairs, tmp_path, conditioning="dra"), steps=3).read_text()
    assert "DRA restoration adapter" in dra and "pipe.load_conditioning(" in dra
    plain = write_model_card(tmp_path / "p", _config(pairs, tmp_path), steps=3).read_text()
    rank = _config(pairs, tmp_path).rank
    assert "FluxIR adapter for" in plain and f"(rank {rank})" in plain and "pipe.load_conditioning(" in plain
    assert "(rank 16) on every attention" in ummf and "joins the" in ummf  # UMMF's own options, its mode


def _component(pipe, kind: str):
    """A component of `kind` for `pipe`'s transformer whose condition visibly matters (non-zero outputs/LoRA)."""
    torch.manual_seed(3)
    if kind == "fluxir":
        component = FluxIRAdapter.from_transformer(pipe.transformer, rank=4, max_sequence_length=32)
        torch.nn.init.normal_(component.lq_embedder.weight, std=0.05)
        for se in component.image_se:
            torch.nn.init.normal_(se.excitation.weight, std=0.05)
    elif kind == "dra":
        component = DRAAdapter.from_transformer(pipe.transformer, adapter_dim=16, every=2, max_sequence_length=32)
        for stage in component.stages:
            torch.nn.init.normal_(stage.out.weight, std=0.05)
    else:
        component = UMMFConditioner.from_transformer(
            pipe.transformer, mode="add" if kind == "ummf-add" else "sequence", max_sequence_length=32
        )
    for up in getattr(getattr(component, "lora", None), "up", {}).values() if kind != "fluxir" else []:
        torch.nn.init.normal_(up.weight, std=0.05)
    component.set_empty_prompt_embeds(*pipe.adapter.get_empty_prompt_embeds())
    return component


def _restore(pipe, **kwargs):
    return pipe(photo("chelsea", (16, 16)), upscale=2, num_inference_steps=2, generator=gen(0), output_type="np",
                **kwargs).images  # fmt: skip


@pytest.mark.parametrize("kind", ["fluxir", "ummf", "ummf-add", "dra"])
def test_every_kind_saves_and_reloads_as_one_pipeline_folder(tmp_path, kind):
    from diffusers import AutoModel, DiffusionPipeline

    from fluxir_hub import FluxIRPipeline

    pipe = tiny_pipeline()
    plain = _restore(pipe)
    _component(pipe, kind).save_pretrained(tmp_path / "component")
    pipe.load_conditioning(tmp_path / "component")
    expected = _restore(pipe)
    assert not np.allclose(expected, plain)  # the condition changes the result
    pipe.save_pretrained(tmp_path / "pipe")
    for loaded in (
        FluxIRPipeline.from_pretrained(tmp_path / "pipe"),
        DiffusionPipeline.from_pretrained(tmp_path / "pipe", trust_remote_code=True),
    ):
        assert type(loaded).__name__ == "FluxIRPipeline" and type(loaded.adapter) is type(pipe.adapter)
        loaded.set_progress_bar_config(disable=True)
        np.testing.assert_array_equal(_restore(loaded), expected)
    component = AutoModel.from_pretrained(str(tmp_path / "pipe" / "adapter"), trust_remote_code=True)
    assert type(component) is type(pipe.adapter)
    torch.testing.assert_close(component.state_dict(), pipe.adapter.state_dict(), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["ummf", "dra"])
def test_conditioning_scale_is_per_call_when_two_threads_restore_at_once(kind):
    from concurrent.futures import ThreadPoolExecutor

    pipe = tiny_pipeline()
    pipe.load_conditioning("unused", component=_component(pipe, kind))
    alone = {scale: _restore(pipe, conditioning_scale=scale) for scale in (0.2, 1.0)}
    assert not np.allclose(alone[0.2], alone[1.0])
    with ThreadPoolExecutor(2) as pool:
        futures = [(s, pool.submit(_restore, pipe, conditioning_scale=s)) for s in [0.2, 1.0] * 4]
        for scale, future in futures:
            np.testing.assert_array_equal(future.result(), alone[scale])
    # a call without the condition is the plain base: the LoRA acts only inside conditioned calls
    assert pipe.adapter.lora.names and not getattr(pipe.transformer, "peft_config", None)


def test_a_folder_written_with_a_separate_lora_file_still_loads(tmp_path):
    """UMMF/DRA folders from before components held their LoRA: config + weights + diffusers' LoRA file."""
    from safetensors.torch import load_file, save_file

    pipe = tiny_pipeline()
    ummf = _component(pipe, "ummf")
    ummf.save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / "diffusion_pytorch_model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith("lora.")},
              str(tmp_path / "diffusion_pytorch_model.safetensors"))  # fmt: skip
    lora = {}
    for name in ummf.lora.names:
        key = name.replace(".", "__")
        lora[f"transformer.{name}.lora_A.weight"] = ummf.lora.down[key].weight.detach().clone()
        lora[f"transformer.{name}.lora_B.weight"] = ummf.lora.up[key].weight.detach().clone()
    save_file(lora, str(tmp_path / "pytorch_lora_weights.safetensors"))
    loaded = UMMFConditioner.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.state_dict(), ummf.state_dict(), rtol=0, atol=0)
    lora.popitem()
    save_file(lora, str(tmp_path / "pytorch_lora_weights.safetensors"))
    with pytest.raises(ValueError, match="has no transformer.*another base or rank"):
        UMMFConditioner.from_pretrained(tmp_path)


def test_a_new_conditioning_is_one_class_the_trainer_config_loader_and_pipeline_all_know(pairs, tmp_path, monkeypatch):
    """A fifth kind, defined here: registering is subclassing; nothing else in the project changes."""
    from diffusers.configuration_utils import ConfigMixin, register_to_config
    from diffusers.models.modeling_utils import ModelMixin

    from fluxir_hub.models import conditioning as registry
    from fluxir_hub.models.conditioning import ConditioningMixin, conditioning_names
    from training.config import TrainConfig

    monkeypatch.setattr(registry, "_CLASSES", dict(registry.conditioning_classes()))
    monkeypatch.setattr(registry, "_NAMES", dict(registry._NAMES))

    class ToyConditioning(ConditioningMixin, ModelMixin, ConfigMixin):
        """The LQ latent added to the noisy one with a learned gain."""

        training_names = {"toy-add": {}}
        description = "a toy conditioning (the LQ latent added with a learned gain)"
        geometry_keys = ("in_channels",)

        @register_to_config
        def __init__(self, in_channels: int = 64, max_sequence_length: int = 512, joint_attention_dim: int = 4096,
                     pooled_projection_dim: int = 768):  # fmt: skip
            super().__init__()
            self.gain = torch.nn.Parameter(torch.zeros(()))
            self._register_empty_prompt_cache(max_sequence_length, joint_attention_dim, pooled_projection_dim)

        @classmethod
        def from_transformer(cls, transformer, max_sequence_length=512):
            base = transformer.config
            return cls(base.in_channels, max_sequence_length, base.joint_attention_dim, base.pooled_projection_dim)

        def prepare_base_call(self, base_kwargs, lq_latents, conditioning_scale=1.0):
            latents = base_kwargs["hidden_states"]
            shifted = latents + conditioning_scale * self.gain * lq_latents.to(latents.dtype)
            return {**base_kwargs, "hidden_states": shifted}, None

    assert conditioning_names()["toy-add"][0] is ToyConditioning
    config = _config(pairs, tmp_path / "toy", conditioning="toy-add", max_train_steps=2, learning_rate=0.1)
    config.validate()
    with pytest.raises(ValueError, match="must be fluxir, ummf, ummf-add, dra or toy-add"):
        TrainConfig(**{**config.to_dict(), "conditioning": "toy"}).validate()
    Trainer(config).train()
    pipe = tiny_pipeline()
    pipe.load_conditioning(tmp_path / "toy")
    assert isinstance(pipe.adapter, ToyConditioning) and pipe.adapter.gain.item() != 0
    assert _restore(pipe).shape == (1, 32, 32, 3)
    assert "A toy conditioning" in (tmp_path / "toy" / "README.md").read_text()
