"""The `photos` stage of `fluxir-build-mini`: fetch the registry's Debian photographs into the photos folder.

Each package is fetched once with `apt-get download <package>=<version>` (no installation, no root) and unpacked with
`dpkg -x` into a temporary folder; only the registry's files are kept (a photo inside a Qt resource bundle is read out
of it: `training.mini.qt_resources`), each checked against its sha256 and written atomically as `<name><suffix>`.
Files already there with the right sha256 are kept; wrong ones are fetched again.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from fluxir_hub.files import atomic_write
from training.mini.photos import PHOTOS, Photo, sha256_of
from training.mini.qt_resources import read_qt_resources


class PhotoFetchError(RuntimeError):
    """A package could not be fetched or does not hold the registry's file; the message says how to supply it."""


def photo_is_ready(photo: Photo, photos_dir: Path) -> bool:
    path = photos_dir / photo.file_name
    return path.is_file() and sha256_of(path) == photo.sha256


def missing_photos(photos_dir: Path) -> list[Photo]:
    """The Debian photos of the registry that are not in `photos_dir` with the right content."""
    return [p for p in PHOTOS if p.source == "debian" and not photo_is_ready(p, photos_dir)]


def _by_hand(photos: list[Photo], photos_dir: Path) -> str:
    first = photos[0]
    return (
        f"To supply them by hand, unpack {first.package} ({first.version}) anywhere (`apt-get download "
        f"{first.package}` then `dpkg -x <file>.deb <folder>`, on any Debian or Ubuntu machine) and copy "
        + ", ".join(
            (f"{p.member} out of {p.path} (`training.mini.qt_resources.read_qt_resources`)" if p.member else p.path)
            + f" to {photos_dir / p.file_name}"
            for p in photos[:3]
        )
        + (f" (and {len(photos) - 3} more, listed in training/mini/photos.py)" if len(photos) > 3 else "")
        + "; or pass --photos-dir to a folder that holds them."
    )


def _download(package: str, version: str, folder: Path) -> Path:
    """The package's .deb in `folder`: the registry's version, else whichever version apt offers (the sha256 check
    decides whether its files are the same)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise PhotoFetchError(f"apt-get and dpkg are not available here, so {package} cannot be fetched.")
    for spec in (f"{package}={version}", package):
        result = subprocess.run(["apt-get", "download", spec], cwd=folder, capture_output=True, text=True)
        debs = sorted(folder.glob(f"{package}_*.deb"))
        if result.returncode == 0 and debs:
            return debs[0]
    reason = (result.stderr.strip().splitlines() or ["no reason given"])[-1]
    raise PhotoFetchError(f"`apt-get download {package}` failed ({reason}).")


def _packaged_file(root: Path, photo: Photo, bundles: dict[str, dict[str, bytes]]) -> bytes | None:
    """The bytes of `photo` in the package unpacked at `root` (read out of its Qt bundle, each bundle read once),
    or None when the package lacks it."""
    source = root / photo.path.lstrip("/")
    if not source.is_file():
        return None
    if photo.member is None:
        return source.read_bytes()
    if photo.path not in bundles:
        try:
            bundles[photo.path] = read_qt_resources(source)
        except ValueError:
            bundles[photo.path] = {}
    return bundles[photo.path].get(photo.member)


def fetch_photos(photos_dir: str | Path) -> list[str]:
    """
    Put every Debian photo of the registry into `photos_dir` (checked by sha256); returns the names fetched now.

    Raises:
        PhotoFetchError: a package could not be fetched or its file differs; says which and how to supply it by hand.
    """
    photos_dir = Path(photos_dir)
    if photos_dir.exists() and not photos_dir.is_dir():
        raise PhotoFetchError(f"--photos-dir {photos_dir} is a file, not a folder; pass a folder for the photos.")
    photos_dir.mkdir(parents=True, exist_ok=True)
    blocked = [p.file_name for p in PHOTOS if (photos_dir / p.file_name).is_dir()]
    if blocked:
        raise PhotoFetchError(
            f"{photos_dir} holds folders where photo files belong ({', '.join(blocked[:3])}); remove or rename them."
        )
    groups: dict[tuple[str, str], list[Photo]] = defaultdict(list)
    for photo in missing_photos(photos_dir):
        groups[(photo.package, photo.version)].append(photo)
    fetched = []
    for (package, version), photos in tqdm(groups.items(), desc="Fetching photo packages", unit="package"):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                deb = _download(package, version, Path(tmp))
                root = Path(tmp) / "root"
                subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True)
            except (PhotoFetchError, subprocess.CalledProcessError, OSError) as err:
                raise PhotoFetchError(f"{err} {_by_hand(photos, photos_dir)}") from err
            bundles: dict[str, dict[str, bytes]] = {}
            for photo in photos:
                content = _packaged_file(root, photo, bundles)
                if content is None or hashlib.sha256(content).hexdigest() != photo.sha256:
                    what = "does not hold" if content is None else "holds a different"
                    raise PhotoFetchError(
                        f"{deb.name} {what} {photo.member or photo.path} (the registry's is from version {version}). "
                        + _by_hand([photo], photos_dir)
                    )
                atomic_write(
                    photos_dir / photo.file_name, lambda tmp_path, data=content: Path(tmp_path).write_bytes(data)
                )
                fetched.append(photo.name)
    return fetched
