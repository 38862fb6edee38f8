"""Command-line entry points (thin `main()` functions; the work lives in the library)."""

import logging
import os


def add_common_arguments(parser) -> None:
    """`--version` and `--verbose`, the same on every command."""
    from fluxir_hub import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__} (FluxIR Hub)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")


def configure_logging(verbose: int = 0) -> None:
    """Warnings only by default; `-v` adds progress information, `-vv` debug output (this project's loggers and
    diffusers/transformers)."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for name in ("fluxir_hub", "dataset_builder", "training", "demo"):
        logging.getLogger(name).setLevel(level)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity(max(level, logging.WARNING) if verbose < 2 else logging.DEBUG)
    quiet_optional_backends()


def quiet_optional_backends() -> None:
    """Silence bitsandbytes' CPU-kernel warnings: pyiqa pulls the package in, and its "Failed to load CPU
    gemm_4bit_forward" line at import (or `kernels`' "Skipping publisher trust check" for that kernel when offline)
    means nothing for these commands (no 4-bit models are used)."""
    for name in ("bitsandbytes", "kernels"):
        logging.getLogger(name).setLevel(logging.ERROR)


def report_failure(prog: str, err: ValueError | OSError) -> int:
    """Print what went wrong as one line, `prog: ...`, on stderr (an `OSError` as [`describe_os_error`] says it) and
    return the exit code of a failed command, 2."""
    import sys

    print(f"{prog}: {describe_os_error(err) if isinstance(err, OSError) else err}", file=sys.stderr)
    return 2


def describe_os_error(err: OSError) -> str:
    """
    One line for an `OSError` met by a command: a failed model or dataset lookup (Hub or cache; these carry no
    errno) says how to get the files; a file-system error (disk full, permissions) says which file and why.
    """
    if err.errno is not None:
        where = f" ({err.filename})" if err.filename else ""
        return f"{err.strerror or err}{where}."
    first_line = (str(err).splitlines() or [""])[0][:300]
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no")
    hint = (
        "HF_HUB_OFFLINE is set, so nothing can be downloaded: download it once where the Hub is reachable "
        "(`hf download <repo>`) or pass a local folder."
        if offline
        else "Check the repo id and your connection; gated models (FLUX.1-dev) need their licence accepted on the "
        "model page and a login (`hf auth login`). A local folder works too."
    )
    return f"could not load a model or dataset ({err.__class__.__name__}: {first_line}). {hint}"
