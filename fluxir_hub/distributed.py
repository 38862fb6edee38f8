"""The process group of a (possibly multi-process) run, and how work is split across it: FluxGen's stages and
`fluxir-eval restore` take their shares the same way."""

from __future__ import annotations


def process_state():
    """accelerate's `PartialState`, on the CPU (gloo) when no GPU is present.

    accelerate only forms a multi-process CPU group when asked for `cpu=True`; without it, `torchrun` or
    `accelerate launch --multi_gpu` on a GPU-less machine would start independent single processes.
    """
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def shard(items: list, state=None) -> list:
    """This process's share of `items`: every `num_processes`-th, from its index. Work is always split from a list
    every process computes the same way from the build folder, so any number of processes (and a resume with
    another number) covers every item once."""
    state = state or process_state()
    return items[state.process_index :: state.num_processes]


def blocks(seeds: list[int], size: int) -> list[list[int]]:
    """`seeds` grouped by the fixed grid `seed // size`: a batch's members do not depend on how many processes
    share the work (so batched computations give the same numbers for 1, 2 or 3 processes)."""
    grouped: dict[int, list[int]] = {}
    for seed in seeds:
        grouped.setdefault(seed // size, []).append(seed)
    return [grouped[key] for key in sorted(grouped)]


def stop_if_any_failed(error: str | None, state=None) -> None:
    """
    A collective step every process reaches after a stage: if any of them failed (`error`: its one-line message),
    all raise a `ValueError` naming each failed process, instead of the others waiting for it at the next barrier.
    """
    state = state or process_state()
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        errors = gather_object([error])
    else:
        errors = [error]
    failed = [(rank, message) for rank, message in enumerate(errors) if message]
    if failed:
        if len(errors) == 1:
            raise ValueError(failed[0][1])
        raise ValueError("; ".join(f"process {rank}: {message}" for rank, message in failed))
