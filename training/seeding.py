"""Seeds derived from names: every random draw of training is keyed by what it is for (the seed, a purpose, the
process, the step), so it is the same in a resumed run and for any number of processes or data workers."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


def key_digest(*keys: int | str) -> int:
    """A 64-bit integer from `keys` (sha256 of their `/`-joined text)."""
    return int.from_bytes(hashlib.sha256("/".join(map(str, keys)).encode()).digest()[:8], "little")


def derived_seed(*keys: int | str) -> int:
    """A seed for `torch.Generator.manual_seed` (which takes values below 2**63) from `keys`."""
    return key_digest(*keys) % (2**63)


def numpy_rng(*keys: int | str) -> np.random.Generator:
    return np.random.default_rng(key_digest(*keys))


def torch_generator(*keys: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(derived_seed(*keys))
