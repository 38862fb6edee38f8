"""Command-line entry points (thin `main()` functions; the work lives in the library)."""

import logging


def quiet_optional_backends() -> None:
    """Silence bitsandbytes' CPU-kernel warning: pyiqa pulls the package in, and its "Failed to load CPU
    gemm_4bit_forward" line at import means nothing for these commands (no 4-bit models are used)."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
