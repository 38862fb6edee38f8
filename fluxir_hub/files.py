"""Atomic file writes: a temp file in the target folder, then a rename, so a killed process never leaves a
truncated file under the final name."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from PIL import Image, PngImagePlugin


@lru_cache(maxsize=1)
def _umask() -> int:
    # os.umask can only be read by setting it: do it once, not per file (the value is process-wide).
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)`, then move the result to `path` (folders created as needed). The file gets the
    permissions a plain `open()` would give it (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_save_png(path: str | os.PathLike, image: Image.Image, text: dict[str, str] | None = None) -> None:
    """Save `image` as PNG at `path`, with optional text chunks (metadata)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG", pnginfo=info))
