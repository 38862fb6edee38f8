"""The paper's metric names and the pyiqa models behind them."""

from __future__ import annotations

import zlib
from pathlib import Path

import torch

# Paper 001 §4.1 name -> pyiqa model name.
PAPER_METRICS: dict[str, str] = {
    "PSNR": "psnr",
    "SSIM": "ssim",
    "LPIPS": "lpips",
    "CLIPIQA": "clipiqa+_vitL14_512",
    "MUSIQ": "musiq",
    "MANIQA": "maniqa-pipal",
}
FULL_REFERENCE = {"PSNR", "SSIM", "LPIPS"}
LOWER_IS_BETTER = {"LPIPS"}
# Metrics that need no downloaded weights, for offline runs and tests.
OFFLINE_METRICS = {"PSNR": "psnr", "SSIM": "ssim", "PIQE": "piqe", "ENTROPY": "entropy"}


class MetricUnavailableError(ValueError):
    """A pyiqa metric's weights are not on this machine and cannot be downloaded; the message says how to get them."""


def _download_failed(err: BaseException) -> bool:
    from urllib.error import URLError

    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    return isinstance(err, (URLError, LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError))


def create_pyiqa_metric(name: str, device: str | torch.device = "cpu", pretrained: bool = True):
    """
    `pyiqa.create_metric(name)`; with `pretrained=False`, learned metrics get random weights (offline tests only).

    Hand-crafted metrics (piqe, entropy) reject `pretrained`, some only when called, so they are probed once and
    rebuilt without it.

    Raises:
        MetricUnavailableError: the metric's weights are not cached and cannot be downloaded (offline machine).
    """
    import pyiqa

    try:
        if pretrained:
            return pyiqa.create_metric(name, device=device)
        # Random weights, but the same in every process (a resumed or multi-rank run scores as one run would): drawn
        # from a generator seeded by the metric's name, leaving the caller's random state untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(zlib.crc32(name.encode()))
            try:
                metric = pyiqa.create_metric(name, device=device, pretrained=False)
                with torch.no_grad():
                    metric(torch.rand(1, 3, 64, 64, device=device))
                return metric
            except TypeError:
                return pyiqa.create_metric(name, device=device)
    except Exception as err:
        if not _download_failed(err) and not _download_failed(err.__cause__ or err.__context__ or err):
            raise
        cache = Path(torch.hub.get_dir()) / "pyiqa"
        raise MetricUnavailableError(
            f"The pyiqa metric {name!r} needs weights that are not cached on this machine and could not be downloaded "
            f"({err.__class__.__name__}). Run the command once with internet access (the weights go to {cache} and "
            "the Hugging Face cache), copy those folders from a machine that has them, or choose metrics that need "
            "no weights: psnr, ssim, piqe, entropy."
        ) from err


def create_scorers(names: list[str], device: str | torch.device = "cpu") -> dict:
    """Build each metric once: paper names map through `PAPER_METRICS`; `PIQE`/`ENTROPY` run offline."""
    table = {**PAPER_METRICS, **OFFLINE_METRICS}
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"Unknown metric(s) {unknown}; choose from {sorted(table)}.")
    return {name: create_pyiqa_metric(table[name], device=device) for name in names}


def lower_is_better(name: str) -> bool:
    return name in LOWER_IS_BETTER or name == "PIQE"
