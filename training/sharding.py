"""Shard the frozen FLUX base across the processes with PyTorch FSDP2; the trainable adapter stays replicated (DDP).

Why not accelerate's FSDP plugin: it shards the whole prepared module, so the 0.4B adapter and its optimiser state
would be sharded too (and every checkpoint would hold shards of the frozen 12B base). Here the base, ~24 GB in bf16,
is split N ways (each block all-gathered only while it runs, forward and backward), while the adapter, its AdamW
state and its checkpoints stay as on one GPU. Works under any `accelerate launch` with 2+ processes, GPUs or
(gloo) CPUs.
"""

from __future__ import annotations

import torch

from .model import ControlledTransformer


def shard_frozen_base(model: ControlledTransformer, device: torch.device, world_size: int) -> None:
    """
    Apply `fully_shard` to each block of `model.transformer`, then to the transformer itself (its embedders and
    output layers), over all `world_size` processes, and tell DDP to leave those parameters alone.

    Each block's full weights move to `device` one at a time before being split, so a base larger than one card can
    be sharded from CPU memory. The adapter's hooks on the blocks are untouched: FSDP2 keeps the modules as they are.

    Args:
        model (`ControlledTransformer`): The base with its conditioning installed, on the CPU or `device`.
        device (`torch.device`): This process's device (the mesh's device type).
        world_size (`int`): Number of processes (2 or more).

    Raises:
        `ValueError`: if any base parameter is trainable (a LoRA on the base cannot be sharded this way).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    transformer = model.transformer
    trainable = [name for name, p in transformer.named_parameters() if p.requires_grad]
    if trainable:
        raise ValueError(
            f"`--shard_base` shards the frozen base only, but {len(trainable)} base parameters train (e.g. "
            f"{trainable[0]}): leave `use_lora` off and use a conditioning without a base LoRA (fluxir)."
        )
    mesh = init_device_mesh(torch.device(device).type, (world_size,))
    for block in (*transformer.transformer_blocks, *transformer.single_transformer_blocks):
        fully_shard(block, mesh=mesh)
    fully_shard(transformer, mesh=mesh)
    # DDP broadcasts and all-reduces every other parameter; the sharded ones are FSDP's.
    model._ddp_params_and_buffers_to_ignore = [
        f"transformer.{name}" for name, _ in (*transformer.named_parameters(), *transformer.named_buffers())
    ]
