"""Kept for imports written before the degradations moved to `fluxir_hub.degradations`."""

from fluxir_hub.degradations.kernels import KERNEL_TYPES, make_kernel, sinc_kernel  # noqa: F401
