"""Folder layout of a FluxGen build and atomic writes (temp file in the same folder, then rename)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fluxir_hub.files import atomic_save_png, atomic_write_text

__all__ = [
    "BuildLayout",
    "atomic_save_png",
    "atomic_write_json",
    "atomic_write_text",
    "check_image",
    "quarantine",
    "remove_stale_temp_files",
]

QUARANTINE_SUFFIX = ".corrupt"


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def remove_stale_temp_files(folder: Path) -> int:
    """Delete `.*.tmp` files left by a killed run; returns how many."""
    removed = 0
    if Path(folder).exists():
        for tmp in Path(folder).rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def check_image(path: Path, decode: bool = True) -> str | None:
    """
    None when `path` is a complete image; otherwise why not (missing, truncated, not an image). `decode=False` only
    checks the file's structure and checksums (PNG chunk CRCs), which is much faster and catches truncation.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load() if decode else image.verify()
    except FileNotFoundError:
        return "missing"
    except Exception as err:  # PIL raises many types for damaged data
        return f"{err.__class__.__name__}: {err}"
    return None


def quarantine(path: Path) -> Path:
    """Move a damaged file aside (`<name>.corrupt`, kept for inspection) so the stage that makes it redoes it."""
    target = path.with_name(path.name + QUARANTINE_SUFFIX)
    os.replace(path, target)
    return target


class BuildLayout:
    """Where each stage of a build in `root` reads and writes. Image ids are zero-padded seeds."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @staticmethod
    def image_id(seed: int) -> str:
        return f"{seed:08d}"

    def _sharded(self, folder: str, seed: int, suffix: str) -> Path:
        return self.root / folder / f"{seed // 1000:06d}" / f"{self.image_id(seed)}{suffix}"

    def image_path(self, seed: int) -> Path:
        return self._sharded("images", seed, ".png")

    def lq_path(self, seed: int) -> Path:
        return self._sharded("lq", seed, ".png")

    def lq_params_path(self, seed: int) -> Path:
        return self._sharded("lq", seed, ".json")

    def target_path(self, seed: int) -> Path:
        """The sharpened HQ target of `seed`, when its degradation record says `"target": "usm"`."""
        return self._sharded("lq", seed, "_target.png")

    @property
    def scores_dir(self) -> Path:
        return self.root / "scores"

    @property
    def selection_path(self) -> Path:
        return self.root / "selection.json"

    @property
    def dataset_dir(self) -> Path:
        return self.root / "dataset"

    def generated_seeds(self, seed_range: tuple[int, int] | None = None) -> list[int]:
        """Seeds whose image is on disk (temp files ignored), optionally only those in `[start, end)`."""
        folder = self.root / "images"
        if not folder.exists():
            return []
        seeds = sorted(int(p.stem) for p in folder.glob("*/*.png") if not p.name.startswith("."))
        if seed_range is not None:
            seeds = [s for s in seeds if seed_range[0] <= s < seed_range[1]]
        return seeds
