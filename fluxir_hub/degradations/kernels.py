"""Blur kernels of the Real-ESRGAN degradation model, as pure functions of their parameters.

Each kernel is described by a small JSON-plain dict (its "spec"), e.g.
`{"type": "aniso", "size": 15, "sigma_x": 1.2, "sigma_y": 2.5, "rotation": 0.3}` or
`{"type": "sinc", "size": 21, "omega_c": 1.4}`; [`make_kernel`] turns a spec into a normalised `(size, size)` array.
Sampling specs lives in `fluxir_hub.degradations.realesrgan`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

GAUSSIAN_TYPES = ("iso", "aniso")
GENERALIZED_TYPES = ("generalized_iso", "generalized_aniso")
PLATEAU_TYPES = ("plateau_iso", "plateau_aniso")
KERNEL_TYPES = GAUSSIAN_TYPES + GENERALIZED_TYPES + PLATEAU_TYPES


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, rotation: float) -> np.ndarray:
    """`x^T Sigma^-1 x` on a centred `size x size` grid, Sigma rotated by `rotation` radians."""
    c, s = math.cos(rotation), math.sin(rotation)
    u = np.array([[c, -s], [s, c]])
    sigma = u @ np.diag([sigma_x**2, sigma_y**2]) @ u.T
    inverse = np.linalg.inv(sigma)
    axis = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(axis, axis)
    grid = np.stack([xx, yy], axis=-1)
    return np.sum((grid @ inverse) * grid, axis=-1)


def anisotropic_kernel(size: int, sigma_x: float, sigma_y: float, rotation: float, family: str, beta: float = 1.0):
    """Gaussian (`family="gaussian"`), generalized Gaussian or plateau kernel, normalised to sum 1."""
    q = _quadratic_form(size, sigma_x, sigma_y, rotation)
    if family == "gaussian":
        kernel = np.exp(-0.5 * q)
    elif family == "generalized":
        kernel = np.exp(-0.5 * np.power(q, beta))
    elif family == "plateau":
        kernel = 1.0 / (np.power(q, beta) + 1.0)
    else:
        raise ValueError(f"Unknown kernel family {family!r}.")
    return kernel / kernel.sum()


def sinc_kernel(size: int, omega_c: float) -> np.ndarray:
    """2-D circular low-pass (sinc) kernel with cutoff `omega_c` (radians per pixel), normalised to sum 1."""
    centre = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.hypot(x - centre, y - centre)
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = omega_c * special.j1(omega_c * r) / (2 * np.pi * r)
    kernel[int(centre), int(centre)] = omega_c**2 / (4 * np.pi)
    return kernel / kernel.sum()


def make_kernel(spec: dict) -> np.ndarray:
    """Build the normalised kernel a spec describes (see module docstring)."""
    kind, size = spec["type"], int(spec["size"])
    if size % 2 == 0 or size < 1:
        raise ValueError(f"Kernel size must be a positive odd number, got {size}.")
    if kind == "sinc":
        return sinc_kernel(size, spec["omega_c"])
    if kind == "pulse":
        kernel = np.zeros((size, size))
        kernel[size // 2, size // 2] = 1.0
        return kernel
    if kind not in KERNEL_TYPES:
        raise ValueError(f"Unknown kernel type {kind!r}; expected one of {KERNEL_TYPES + ('sinc', 'pulse')}.")
    family = "gaussian" if kind in GAUSSIAN_TYPES else kind.split("_")[0]
    return anisotropic_kernel(
        size, spec["sigma_x"], spec["sigma_y"], spec.get("rotation", 0.0), family, spec.get("beta", 1.0)
    )
