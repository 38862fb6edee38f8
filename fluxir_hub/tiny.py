"""Tiny, seeded, fully offline FLUX components.

They share FLUX.1's structure (16-channel VAE latents at 1/8 scale packed 2x2 into 64 channels, a guidance-distilled
MM-DiT, CLIP + T5 text encoders) at a size that runs on any CPU in milliseconds. Tests, the `--tiny` modes of the
commands (`fluxir-restore`, `fluxir-train --pretrained_model tiny`, `fluxgen --model tiny`, the Space's
`FLUXIR_TINY=1`) and benchmarks use them, and the mini model takes its (frozen, random) text encoders from here; the
weights are random, so images are not meaningful.

```py
from fluxir_hub.tiny import tiny_pipeline

pipe = tiny_pipeline()
image = pipe(lq_image, upscale=2, num_inference_steps=2).images[0]
```
"""

from __future__ import annotations

import string
from typing import Any

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5Tokenizer

from .flux_configs import FLUX_SCHEDULER_CONFIG

# Transformer sizes: "tiny" for tests, "mid" for CPU benchmarks (still far below FLUX.1-dev).
TRANSFORMER_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        # inner width 64 = the packed latent width, so even the tiny model can fit any velocity field
        "num_layers": 2,
        "num_single_layers": 2,
        "attention_head_dim": 16,
        "num_attention_heads": 4,
        "joint_attention_dim": 32,
        "pooled_projection_dim": 32,
        "axes_dims_rope": [4, 6, 6],
    },
    "mid": {
        "num_layers": 4,
        "num_single_layers": 8,
        "attention_head_dim": 64,
        "num_attention_heads": 8,
        "joint_attention_dim": 32,
        "pooled_projection_dim": 32,
        "axes_dims_rope": [8, 28, 28],
    },
}

TEXT_WIDTH = 32  # hidden size of both tiny text encoders (= joint_attention_dim / pooled_projection_dim above)
T5_MAX_LENGTH = 32  # tiny T5 context; the pipeline's max_sequence_length must not exceed it


def _clip_tokenizer() -> CLIPTokenizer:
    # Byte-level-free character BPE: every printable character alone and as a word end is a token.
    specials = ["<|startoftext|>", "<|endoftext|>"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = {token: i for i, token in enumerate(specials + chars + [c + "</w>" for c in chars])}
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def _t5_tokenizer() -> T5Tokenizer:
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(c, -3.0) for c in chars] + [("\u2581" + c, -2.5) for c in chars]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def tiny_transformer(size: str = "tiny", seed: int = 0) -> FluxTransformer2DModel:
    """A random FLUX transformer with FLUX.1-dev's packing (64 channels, guidance embeds) at a small width."""
    if size not in TRANSFORMER_SIZES:
        raise ValueError(f"Unknown size {size!r}; choose one of {sorted(TRANSFORMER_SIZES)}.")
    torch.manual_seed(seed)
    return FluxTransformer2DModel(patch_size=1, in_channels=64, guidance_embeds=True, **TRANSFORMER_SIZES[size])


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    """A random AutoencoderKL with FLUX's latent layout: 16 channels, 8x downsampling, FLUX scale and shift."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.3611,
        shift_factor=0.1159,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def tiny_text_components(seed: int = 0) -> dict[str, Any]:
    """Tiny random CLIP and T5 text encoders (width 32, T5 context 32) with in-memory tokenizers, built offline."""
    tokenizer = _clip_tokenizer()
    tokenizer_2 = _t5_tokenizer()

    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=TEXT_WIDTH,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            projection_dim=TEXT_WIDTH,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    torch.manual_seed(seed)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer_2),
            d_model=TEXT_WIDTH,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer_2.pad_token_id,
            eos_token_id=tokenizer_2.eos_token_id,
            decoder_start_token_id=tokenizer_2.pad_token_id,
        )
    ).eval()
    return {
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": text_encoder_2,
        "tokenizer_2": tokenizer_2,
    }


def tiny_components(size: str = "tiny", seed: int = 0) -> dict[str, Any]:
    """
    The seven components of a FLUX.1 text-to-image pipeline, tiny and random, built offline.

    Args:
        size (`str`, *optional*, defaults to `"tiny"`): `"tiny"` (tests) or `"mid"` (CPU benchmarks) transformer.
        seed (`int`, *optional*, defaults to `0`): Seed for every component's initialisation.

    Returns:
        `dict` with keys `scheduler, vae, text_encoder, tokenizer, text_encoder_2, tokenizer_2, transformer`, ready for
        `diffusers.FluxPipeline(**components)` or `FluxIRPipeline(**components, adapter=...)`.
    """
    return {
        "scheduler": FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG),
        "vae": tiny_vae(seed).eval(),
        **tiny_text_components(seed),
        "transformer": tiny_transformer(size, seed).eval(),
    }


def tiny_adapter(transformer: FluxTransformer2DModel, rank: int = 4, seed: int = 0, randomize: bool = False):
    """
    A FluxIR adapter for `transformer`.

    Args:
        transformer: The base it controls (its embedders and first block are copied).
        rank (`int`, *optional*, defaults to `4`): SE rank.
        seed (`int`, *optional*, defaults to `0`): Seed for the fresh layers.
        randomize (`bool`, *optional*, defaults to `False`): Replace the zero-initialised layers (M_i, excitations,
            text offsets) with small random values, as after training, so the control has a visible effect.
    """
    from .models.adapter_fluxir import FluxIRAdapter

    torch.manual_seed(seed)
    adapter = FluxIRAdapter.from_transformer(transformer, rank=rank, max_sequence_length=T5_MAX_LENGTH)
    if randomize:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in adapter.named_parameters():
                if name.startswith(("lq_embedder", "image_se", "text_se", "prompt_offset", "pooled_prompt_offset")):
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return adapter.eval()


def tiny_pipeline(size: str = "tiny", seed: int = 0, randomize_adapter: bool = True, cache_empty_prompt: bool = True):
    """
    A ready, seeded tiny [`FluxIRPipeline`] on the CPU.

    Args:
        size (`str`, *optional*, defaults to `"tiny"`): Transformer size, see [`tiny_components`].
        seed (`int`, *optional*, defaults to `0`): Initialisation seed.
        randomize_adapter (`bool`, *optional*, defaults to `True`): Give the adapter non-zero control layers.
        cache_empty_prompt (`bool`, *optional*, defaults to `True`): Store the empty-prompt embeddings in the
            adapter, as a trained adapter ships them.
    """
    from .pipelines.pipeline_fluxir import FluxIRPipeline

    components = tiny_components(size=size, seed=seed)
    adapter = tiny_adapter(components["transformer"], seed=seed, randomize=randomize_adapter)
    pipe = FluxIRPipeline(**components, adapter=adapter)
    if cache_empty_prompt:
        pipe.cache_empty_prompt_embeds()
    pipe.set_progress_bar_config(disable=True)
    return pipe
