"""The process group of a (possibly multi-process) run."""

from __future__ import annotations


def process_state():
    """accelerate's `PartialState`, on the CPU (gloo) when no GPU is present.

    accelerate only forms a multi-process CPU group when asked for `cpu=True`; without it, `torchrun` or
    `accelerate launch --multi_gpu` on a GPU-less machine would start independent single processes.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())
