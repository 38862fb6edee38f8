import pytest
import torch
from accelerate import init_empty_weights
from diffusers import FluxTransformer2DModel

from fluxir_hub import FluxIRAdapter
from fluxir_hub.latents import image_ids, text_ids
from fluxir_hub.testing import FLUX_DEV_TRANSFORMER_CONFIG, make_hub_cache, tiny_adapter, tiny_transformer


def _inputs(transformer, batch=2, height=4, width=4, text_len=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    cfg = transformer.config
    n = height * width
    return {
        "hidden_states": torch.randn(batch, n, cfg.in_channels, generator=g),
        "encoder_hidden_states": torch.randn(batch, text_len, cfg.joint_attention_dim, generator=g),
        "pooled_projections": torch.randn(batch, cfg.pooled_projection_dim, generator=g),
        "timestep": torch.rand(batch, generator=g),
        "img_ids": image_ids(height, width),
        "txt_ids": text_ids(text_len),
        "guidance": torch.full((batch,), 3.5),
    }


def _controlled(transformer, adapter, inputs, lq, scale=1.0):
    adapter.install(transformer)
    features = adapter(controlnet_cond=lq, **inputs)
    return transformer(**inputs, joint_attention_kwargs=adapter.control_kwargs(features, scale)).sample


def _reference(transformer, adapter, inputs, lq, scale=1.0):
    """Paper 001 Eq. 4 written out with plain forward hooks: block i's outputs plus SE^i of the features."""
    features = adapter(controlnet_cond=lq, **inputs)
    blocks = [*transformer.transformer_blocks, *transformer.single_transformer_blocks]
    handles = []
    for i, block in enumerate(blocks):

        def add(module, args, output, i=i):
            text, image = output
            return (
                text + adapter.text_se[i](features.text_features) * scale,
                image + adapter.image_se[i](features.image_features) * scale,
            )

        handles.append(block.register_forward_hook(add))
    try:
        return transformer(**inputs).sample
    finally:
        for handle in handles:
            handle.remove()


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("rank, se_params", [(16, 11_558_688), (32, 22_767_168), (64, 45_184_128), (128, 90_018_048)])
def test_parameter_counts_match_paper_table_2(rank, se_params):
    with init_empty_weights():
        base = FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER_CONFIG)
        adapter = FluxIRAdapter.from_transformer(base, rank=rank, load_weights_from_transformer=False)
    assert len(adapter.image_se) == len(adapter.text_se) == 57
    se = _count(adapter.image_se) + _count(adapter.text_se)
    assert se == se_params
    assert _count(adapter) - se == 387_176_704
    assert _count(adapter.block) == 339_831_296
    assert adapter.config.rank == rank


def test_zero_init_leaves_base_output_unchanged():
    transformer = tiny_transformer()
    adapter = tiny_adapter(transformer)
    inputs = _inputs(transformer)
    lq = torch.randn_like(inputs["hidden_states"])
    base = transformer(**inputs).sample
    assert torch.equal(_controlled(transformer, adapter, inputs, lq), base)


def test_image_and_text_residuals_each_change_the_output():
    transformer = tiny_transformer()
    inputs = _inputs(transformer)
    lq = torch.randn_like(inputs["hidden_states"])
    base = transformer(**inputs).sample
    for stream in ("image_se", "text_se"):
        adapter = tiny_adapter(transformer)
        with torch.no_grad():
            for layer in getattr(adapter, stream):
                layer.excitation.weight.normal_(std=0.1)
        out = _controlled(transformer, adapter, inputs, lq)
        assert (out - base).abs().max() > 1e-3, stream
        # the scale multiplies the residuals: zero scale is the base model again
        assert torch.equal(_controlled(transformer, adapter, inputs, lq, scale=0.0), base)


def test_installed_control_equals_eq4_and_leaves_plain_calls_exact():
    transformer = tiny_transformer()
    adapter = tiny_adapter(transformer, randomize=True)
    inputs = _inputs(transformer)
    base = transformer(**inputs).sample
    lq = torch.randn_like(inputs["hidden_states"])
    out = _controlled(transformer, adapter, inputs, lq, scale=0.7)
    torch.testing.assert_close(out, _reference(transformer, adapter, inputs, lq, scale=0.7), rtol=0, atol=0)
    other = _controlled(transformer, adapter, inputs, torch.randn_like(lq))
    assert not torch.allclose(out, other)  # M_i carries the LQ latent into the control
    assert torch.equal(transformer(**inputs).sample, base)  # installed, but a call without features is the base
    state = dict(transformer.named_parameters())
    assert len(state) == len(dict(tiny_transformer().named_parameters()))  # nothing of the adapter registered
    adapter.install(transformer)  # idempotent
    assert sum(len(b._diffusers_hook.hooks) for b in transformer.transformer_blocks) == 2
    FluxIRAdapter.uninstall(transformer)
    assert torch.equal(transformer(**inputs, joint_attention_kwargs={}).sample, base)
    assert torch.equal(transformer(**inputs).sample, base)


def test_concurrent_calls_do_not_interfere():
    import threading

    transformer = tiny_transformer()
    adapter = tiny_adapter(transformer, randomize=True)
    inputs = _inputs(transformer)
    lqs = [torch.randn_like(inputs["hidden_states"]) for _ in range(4)]
    expected = [_controlled(transformer, adapter, inputs, lq) for lq in lqs]
    base = transformer(**inputs).sample
    results, barrier = {}, threading.Barrier(5)

    def worker(k):
        barrier.wait()
        for _ in range(3):
            results[k] = _controlled(transformer, adapter, inputs, lqs[k]) if k < 4 else transformer(**inputs).sample

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in range(4):
        torch.testing.assert_close(results[k], expected[k], rtol=0, atol=0)
    assert torch.equal(results[4], base)  # plain calls in between stay the plain base


def _grads(checkpointing):
    transformer = tiny_transformer()
    transformer.requires_grad_(False)
    adapter = tiny_adapter(transformer, randomize=True).train()
    if checkpointing:
        transformer.enable_gradient_checkpointing()
        adapter.enable_gradient_checkpointing()
    inputs = _inputs(transformer, text_len=adapter.config.max_sequence_length)
    lq = torch.randn_like(inputs["hidden_states"])
    loss = _controlled(transformer, adapter, inputs, lq).square().mean()
    loss.backward()
    return transformer, {name: p.grad for name, p in adapter.named_parameters()}


def test_gradients_reach_every_adapter_parameter_under_checkpointing():
    transformer, grads = _grads(checkpointing=True)
    missing = [name for name, grad in grads.items() if grad is None or not grad.abs().sum() > 0]
    # The last single block's text stream is dropped by FLUX before norm_out, so its text SE (kept for the paper's
    # 114-layer count) can never receive a gradient; every other parameter must.
    last = len(transformer.transformer_blocks) + len(transformer.single_transformer_blocks) - 1
    assert missing == [
        f"text_se.{last}.{p}" for p in ("squeeze.weight", "squeeze.bias", "excitation.weight", "excitation.bias")
    ]
    assert all(p.grad is None for p in transformer.parameters())
    _, reference = _grads(checkpointing=False)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, reference[name], rtol=1e-4, atol=1e-6, msg=name)


def test_from_transformer_copies_embedders_and_first_block():
    transformer = tiny_transformer()
    adapter = tiny_adapter(transformer)
    for name, module in [("x_embedder", adapter.x_embedder), ("context_embedder", adapter.context_embedder)]:
        assert torch.equal(module.weight, getattr(transformer, name).weight)
    first = transformer.transformer_blocks[0].state_dict()
    for key, value in adapter.block.state_dict().items():
        assert torch.equal(value, first[key]), key
    assert torch.count_nonzero(adapter.lq_embedder.weight) == 0
    assert all(torch.count_nonzero(se.excitation.weight) == 0 for se in adapter.image_se)


def test_save_and_load_round_trip(tmp_path):
    transformer = tiny_transformer()
    adapter = tiny_adapter(transformer, randomize=True)
    adapter.set_empty_prompt_embeds(torch.randn(5, 32), torch.randn(32))
    adapter.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "diffusion_pytorch_model.safetensors").exists()
    loaded = FluxIRAdapter.from_pretrained(tmp_path / "adapter")
    assert loaded.config.rank == 4
    inputs = _inputs(transformer)
    lq = torch.randn_like(inputs["hidden_states"])
    torch.testing.assert_close(
        _controlled(transformer, loaded, inputs, lq), _controlled(transformer, adapter, inputs, lq), rtol=0, atol=0
    )
    embeds, pooled = loaded.get_empty_prompt_embeds()
    torch.testing.assert_close(embeds, adapter.get_empty_prompt_embeds()[0])
    assert embeds.shape == (5, 32)


def test_load_by_repo_id_from_offline_hub_cache(tmp_path):
    transformer = tiny_transformer()
    adapter = tiny_adapter(transformer, randomize=True)
    adapter.save_pretrained(tmp_path / "saved")
    make_hub_cache(tmp_path / "saved", "fluxir/tiny-adapter", tmp_path / "hub")
    loaded = FluxIRAdapter.from_pretrained("fluxir/tiny-adapter", cache_dir=tmp_path / "hub")
    for key, value in adapter.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_mismatched_base_geometry_is_refused():
    adapter = tiny_adapter(tiny_transformer("tiny"))
    other = tiny_transformer("mid")
    with pytest.raises(ValueError, match="different base transformer.*num_layers"):
        adapter.check_compatible(other)
    inputs = _inputs(other)
    tiny_inputs = _inputs(tiny_transformer("tiny"))
    with pytest.raises(ValueError, match="from_transformer"):
        adapter.install(other)
    assert torch.equal(other(**inputs).sample, other(**inputs).sample) and tiny_inputs


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank"):
        FluxIRAdapter(rank=0)
    transformer = tiny_transformer()
    adapter = tiny_adapter(transformer)
    with pytest.raises(ValueError, match="no cached empty-prompt"):
        adapter.get_empty_prompt_embeds()
    inputs = _inputs(transformer, text_len=adapter.config.max_sequence_length + 1)
    with pytest.raises(ValueError, match="max_sequence_length"):
        adapter(controlnet_cond=inputs["hidden_states"], **inputs)
