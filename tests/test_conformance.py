"""What a diffusers user expects of the pipeline and its conditioning components (reproductions from diffusers' own
test mixins), and arguments of the wrong type refused by name."""

import gc
import json

import pytest
import torch

from fluxir_hub import FluxIRAdapter, FluxIRPipeline
from fluxir_hub.models.adapter_dra import DRAAdapter
from fluxir_hub.models.conditioning_ummf import UMMFConditioner
from fluxir_hub.testing import tiny_pipeline

from .helpers import gen, photo

FAST = {"num_inference_steps": 2, "upscale": 2, "output_type": "pt"}


def _tensor(seed: int) -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=gen(seed))


def test_a_list_of_batched_tensors_is_one_batch(tiny_pipe):
    batch = torch.cat([_tensor(0), _tensor(1)])
    generators = [gen(0), gen(1)]
    expected = tiny_pipe(batch, generator=generators, **FAST).images
    as_list = tiny_pipe([_tensor(0), _tensor(1)], generator=[gen(0), gen(1)], **FAST).images
    torch.testing.assert_close(as_list, expected, rtol=0, atol=0)


def test_save_pretrained_passes_variant_and_format_to_the_component(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "fp16", variant="fp16", safe_serialization=False)
    assert (tmp_path / "fp16" / "adapter" / "diffusion_pytorch_model.fp16.bin").is_file()
    assert not list((tmp_path / "fp16" / "adapter").glob("*.safetensors"))
    pipe.save_pretrained(tmp_path / "safe", variant="fp16")
    assert (tmp_path / "safe" / "adapter" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    loaded = FluxIRPipeline.from_pretrained(tmp_path / "safe", variant="fp16")
    for name, value in pipe.adapter.state_dict().items():
        torch.testing.assert_close(loaded.adapter.state_dict()[name], value)


def _component(kind: str, transformer):
    torch.manual_seed(3)
    if kind == "ummf":
        component = UMMFConditioner.from_transformer(transformer, max_sequence_length=32)
    else:
        component = DRAAdapter.from_transformer(transformer, adapter_dim=16, every=2, max_sequence_length=32)
        for stage in component.stages:  # zero-initialised outputs: give them a value so the stages act
            torch.nn.init.normal_(stage.out.weight, std=0.05)
    for module in component.lora.up.values():  # the LoRA starts at zero too
        torch.nn.init.normal_(module.weight, std=0.05)
    return component.eval()


def _restore(pipe, component):
    pipe.load_conditioning(None, component=component)
    return pipe(photo(size=(16, 16)), generator=gen(), **FAST).images


@pytest.mark.parametrize("kind", ["ummf", "dra"])
def test_fp8_layerwise_casting_of_a_component_with_a_lora(kind):
    pipe = tiny_pipeline()
    component = _component(kind, pipe.transformer)
    plain = _restore(pipe, component)
    component.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=torch.float32)
    cast = pipe(photo(size=(16, 16)), generator=gen(), **FAST).images
    assert torch.isfinite(cast).all()
    assert (cast - plain).abs().mean() < 0.05  # fp8 storage rounds the weights, nothing more


def test_one_transformer_carries_one_components_hooks():
    ummf_then_dra = tiny_pipeline()
    _restore(ummf_then_dra, _component("ummf", ummf_then_dra.transformer))
    dra = _component("dra", ummf_then_dra.transformer)
    fresh = tiny_pipeline()
    expected = _restore(fresh, _component("dra", fresh.transformer))
    dra.install(ummf_then_dra.transformer)  # directly, without uninstalling first
    ummf_then_dra.register_modules(adapter=dra)
    got = ummf_then_dra(photo(size=(16, 16)), generator=gen(), **FAST).images
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # building a pipeline on an already-hooked transformer: the same
    rebuilt = FluxIRPipeline(**{**ummf_then_dra.components, "adapter": dra})
    torch.testing.assert_close(rebuilt(photo(size=(16, 16)), generator=gen(), **FAST).images, expected, rtol=0, atol=0)


def test_a_new_component_never_passes_for_a_freed_one():
    # Hooks were keyed by `id(component)`: a new component given a freed one's id counted as installed and ran
    # with the freed one's weights. Ownership is now a weak reference.
    pipe = tiny_pipeline()
    transformer = pipe.transformer
    first = FluxIRAdapter.from_transformer(transformer, rank=4, max_sequence_length=32)
    first.install(transformer)
    owner = vars(transformer)["_fluxir_conditioning_owner"]
    assert owner() is first
    del first
    gc.collect()
    assert owner() is None  # a freed component owns nothing, whatever id the next one gets
    second = FluxIRAdapter.from_transformer(transformer, rank=4, max_sequence_length=32)
    second.install(transformer)
    blocks = [*transformer.transformer_blocks, *transformer.single_transformer_blocks]
    hooks = [block._diffusers_hook.get_hook("fluxir_control") for block in blocks]
    assert all(hook.image_se is second.image_se[hook.index] for hook in hooks)


def test_a_passed_component_replaces_the_folders(tmp_path):
    tiny_pipeline().save_pretrained(tmp_path / "saved")
    adapter = FluxIRAdapter.from_pretrained(tmp_path / "saved" / "adapter")
    pipe = FluxIRPipeline.from_pretrained(tmp_path / "saved", adapter=adapter)
    assert pipe.adapter is adapter


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"tile_size": 64.0}, TypeError, "`tile_size` must be an integer"),
        ({"tile_overlap": 8.5, "tile_size": 64}, TypeError, "`tile_overlap` must be an integer"),
        ({"prompt": 123}, TypeError, "`prompt` must be a string"),
        ({"prompt": []}, TypeError, "`prompt` must be a string"),
        ({"upscale": True}, TypeError, "`upscale` must be a number"),
        ({"num_inference_steps": True}, TypeError, "`num_inference_steps` must be a positive integer"),
        ({"callback_on_step_end": "x"}, TypeError, "`callback_on_step_end` must be callable"),
        ({"callback_on_step_end": lambda *a: None}, TypeError, "must return a dict"),
        ({"prompt_embeds": torch.zeros(1, 4, 7), "pooled_prompt_embeds": torch.zeros(1, 32)}, ValueError,
         r"`prompt_embeds` must be \(batch, tokens, 32\)"),
        ({"prompt_embeds": torch.zeros(1, 4, 32), "pooled_prompt_embeds": torch.zeros(1, 5)}, ValueError,
         "`pooled_prompt_embeds` must be"),
    ],
)  # fmt: skip
def test_wrong_types_are_refused_by_name(tiny_pipe, kwargs, error, message):
    with pytest.raises(error, match=message):
        tiny_pipe(photo(size=(16, 16)), num_inference_steps=kwargs.pop("num_inference_steps", 1), **kwargs)


def test_an_empty_tensor_and_a_none_prompt(tiny_pipe):
    with pytest.raises(ValueError, match=r"no pixels \(shape \(3, 0, 32\)\)"):
        tiny_pipe(torch.rand(3, 0, 32), num_inference_steps=1)
    none = tiny_pipe(photo(size=(16, 16)), prompt=None, generator=gen(), **FAST).images
    empty = tiny_pipe(photo(size=(16, 16)), prompt="", generator=gen(), **FAST).images
    torch.testing.assert_close(none, empty, rtol=0, atol=0)


def test_half_precision_on_a_cpu_warns_and_says_why(tiny_pipe):
    pipe = tiny_pipeline().to(torch.bfloat16)
    with pytest.warns(UserWarning, match="about 100x slower than float32"):
        pipe(photo(size=(16, 16)), num_inference_steps=1, upscale=1)


def test_a_config_naming_a_list_class_is_refused_in_one_line(tmp_path):
    from fluxir_hub.models.conditioning import load_conditioning_component

    tiny_pipeline().adapter.save_pretrained(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    config["_class_name"] = ["x", "y"]
    (tmp_path / "a" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"is not a conditioning component \(its config names \['x', 'y'\]\)"):
        load_conditioning_component(tmp_path / "a")


def test_the_default_search_verifier_falls_back_offline(caplog, monkeypatch):
    import fluxir_hub.evaluation.metrics as metrics
    from fluxir_hub.tts import IQAReward

    real = metrics.create_pyiqa_metric

    def offline(name, device="cpu", pretrained=True):  # as on a machine without the learned metrics' weights
        if name in ("musiq", "clipiqa+", "maniqa"):
            raise metrics.MetricUnavailableError(f"{name}: weights not cached")
        return real(name, device, pretrained)

    monkeypatch.setattr(metrics, "create_pyiqa_metric", offline)
    reward = IQAReward()
    scores = reward(torch.rand(2, 3, 32, 32, generator=gen()), torch.rand(2, 3, 32, 32, generator=gen(1)))
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert set(reward.weights) == {"piqe", "entropy"} and "instead" in caplog.text
    with pytest.raises(metrics.MetricUnavailableError):  # metrics the caller chose are never swapped
        IQAReward(metrics={"musiq": 1.0})(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))


def test_an_adapters_sampling_defaults_apply_when_a_call_leaves_them_unset(tiny_pipe):
    lq = photo(size=(16, 16))
    explicit = {"num_inference_steps": 1, "restoration_weight": 0.3, "color_fix": "none"}
    expected = tiny_pipe(lq, generator=gen(), upscale=2, output_type="pt", **explicit).images
    tiny_pipe.adapter.register_to_config(sampling_defaults=explicit)
    out = tiny_pipe(lq, generator=gen(), upscale=2, output_type="pt")
    assert out.nfe == 1
    torch.testing.assert_close(out.images, expected, rtol=0, atol=0)
    two = tiny_pipe(lq, generator=gen(), upscale=2, output_type="pt", num_inference_steps=2)  # the caller's wins
    assert two.nfe == 2
    with pytest.raises(ValueError, match="`sampling_defaults` may set"):
        FluxIRAdapter(rank=4, sampling_defaults={"guidance_scale": 2.0})
    with pytest.raises(ValueError, match="invalid steps count"):
        FluxIRAdapter(rank=4, sampling_defaults={"num_inference_steps": 0})
