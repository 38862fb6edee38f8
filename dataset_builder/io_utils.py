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
    "claim_folder",
    "quarantine",
    "release_folder",
    "remove_stale_temp_files",
]

QUARANTINE_SUFFIX = ".corrupt"
LOCK_NAME = ".fluxgen.lock"  # held by the main process of the run writing into a build folder


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


def _pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError, OverflowError):
        return True  # someone else's process, or an unreadable record: assume it is there
    return True


def claim_folder(root: Path) -> Path:
    """
    Mark `root` as used by this run (the main process calls this once) and return the lock file; a lock left by a
    killed run on this machine is taken over.

    Raises:
        ValueError: another run that is still alive (or on another machine) holds the folder.
    """
    import socket
    import time

    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(lock.read_text())
            except (OSError, ValueError):
                holder = {}
            ours = holder.get("host") == me["host"] and (
                holder.get("pid") == me["pid"] or not _pid_alive(holder.get("pid"))
            )
            if ours or not holder:  # left by a killed run here (or half-written): take it over
                lock.unlink(missing_ok=True)
                continue
            raise ValueError(
                f"{root} is in use by another fluxgen run (process {holder.get('pid')} on {holder.get('host')}, "
                f"started {holder.get('started')}). Wait for it to finish or use another --output-dir; if that run is "
                f"gone (its machine restarted), delete {lock}."
            ) from None
        with os.fdopen(fd, "w") as file:
            json.dump(me, file)
        return lock
    raise ValueError(f"Could not take {lock}: another run keeps replacing it.")


def release_folder(lock: Path | None) -> None:
    """Remove the lock this process took with [`claim_folder`] (never another run's)."""
    if lock is None:
        return
    try:
        if json.loads(lock.read_text()).get("pid") == os.getpid():
            lock.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
