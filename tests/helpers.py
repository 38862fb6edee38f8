"""Shared test helpers: seeded generators; small real photos and FluxGen-like folders (`fluxir_hub.testing`)."""

from __future__ import annotations

import torch

from fluxir_hub.testing import make_pairs_folder, photo  # noqa: F401 (re-exported for the tests)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
