"""The real photos the mini model is trained and evaluated on, with where each comes from and its licence.

Three sources, all offline-installable: scikit-image's bundled colour photos, matplotlib's sample data, and the
photographs in Debian packages: wallpapers, and the animal and monument photos GCompris keeps in Qt resource bundles
(fetched with `apt-get download` + `dpkg -x` by the `photos` stage of `fluxir-build-mini`, or supplied by hand with
`--photos-dir`; every file's sha256 is checked against this registry).

Every photo is in exactly one split. `heldout` photos never enter any training stage (VAE, base generator, FluxGen,
adapter) and never choose a setting; they exist to measure restoration. The Space's examples are made from them.
`texture` photos (fur, feathers, foliage, carved stone) are held out the same way, as a second, texture-rich
measurement set: the wallpapers the stages train on are mostly landscapes and smooth surfaces.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

MAX_SIDE = 1024  # wallpapers are 1.3k-6k px: downscaled (Lanczos) to photo-like detail per pixel, as the held-out are


@dataclass(frozen=True)
class Photo:
    """One photo: `source` is `skimage` (`path` names the `skimage.data` function), `matplotlib` (`path` is a file of
    its sample data) or `debian` (`path` is the file inside `package` at `version`; with `member`, a file inside the
    Qt resource bundle at `path`)."""

    name: str
    split: str  # "train" or "heldout"
    source: str
    path: str
    credit: str
    licence: str
    package: str | None = None
    version: str | None = None
    sha256: str | None = None  # of the file as shipped (matplotlib, debian)
    member: str | None = None

    @property
    def suffix(self) -> str:
        return Path(self.member or self.path).suffix

    @property
    def file_name(self) -> str:
        """The name of its file in a photos folder (fetched or supplied by hand)."""
        return f"{self.name}{self.suffix}"


_MATE = ("mate-backgrounds", "1.26.0-1", "/usr/share/backgrounds/mate/nature/")
_PLASMA = ("plasma-workspace-wallpapers", "4:5.27.5-2", "/usr/share/wallpapers/")
_LOMIRI16 = ("lomiri-wallpapers-16.04", "20.04.0-2", "/usr/share/backgrounds/")
_LOMIRI20 = ("lomiri-wallpapers-20.04", "20.04.0-2", "/usr/share/backgrounds/")
_PLASMA_LICENCE = "GPL-2+ (Debian copyright file); LGPL-3 (the wallpaper's metadata.json)"
_GCOMPRIS = ("gcompris-qt-data", "3.1-2", "/usr/share/gcompris-qt/rcc/")
_GCOMPRIS_FILES = "GPL-3+ (Debian copyright file, `Files: *`)"


def _debian(release: tuple[str, str, str], name: str, file: str, credit: str, licence: str, sha: str,
            split: str = "train") -> Photo:  # fmt: skip
    package, version, folder = release
    return Photo(name, split, "debian", folder + file, credit, licence, package, version, sha)


def _mate(name: str, credit: str, sha: str, split: str = "train") -> Photo:
    return _debian(_MATE, name, f"{name}.jpg", credit, "GPL-2+", sha, split)


def _plasma(name: str, author: str, sha: str, split: str = "train") -> Photo:
    return _debian(
        _PLASMA, name, f"{name}/contents/images/2560x1600.jpg", f"{author} (KDE)", _PLASMA_LICENCE, sha, split
    )


def _lomiri(file: str, credit: str, licence: str, sha: str, split: str = "train", release: tuple = _LOMIRI16) -> Photo:
    return _debian(release, file.split("_by_")[0], file, credit, licence, sha, split)


def _gcompris(name: str, activity: str, folder: str, credit: str, licence: str, sha: str) -> Photo:
    """A texture photo of GCompris (`<activity>.rcc`, `<folder>/<name>.webp` inside it), held out."""
    package, version, rcc_folder = _GCOMPRIS
    member = f"gcompris/src/activities/{activity}/resource/{folder}/{name}.webp"
    return Photo(name, "texture", "debian", f"{rcc_folder}{activity}.rcc", credit, licence, package, version, sha,
                 member)  # fmt: skip


PHOTOS: tuple[Photo, ...] = (
    # scikit-image's colour photos (bundled with the package)
    Photo("rocket", "train", "skimage", "rocket", "SpaceX (DSCOVR launch on Falcon 9)", "public domain"),
    Photo("motorcycle_left", "train", "skimage", "stereo_motorcycle",
          "Middlebury 2014 stereo benchmark (Scharstein et al.), left view",
          "no licence stated; distributed with scikit-image (BSD-3-Clause)"),
    Photo("motorcycle_right", "train", "skimage", "stereo_motorcycle",
          "Middlebury 2014 stereo benchmark (Scharstein et al.), right view",
          "no licence stated; distributed with scikit-image (BSD-3-Clause)"),
    Photo("hubble_deep_field", "train", "skimage", "hubble_deep_field", "NASA / Hubble eXtreme Deep Field",
          "public domain (NASA media guidelines)"),
    Photo("immunohistochemistry", "train", "skimage", "immunohistochemistry",
          "Center for Microscopy And Molecular Imaging (CMMI)", "no known copyright restrictions"),
    Photo("retina", "train", "skimage", "retina", "Mikael Häggström, Wikimedia Commons", "CC0 1.0"),
    Photo("astronaut", "heldout", "skimage", "astronaut", "NASA (Eileen Collins)", "public domain"),
    Photo("chelsea", "heldout", "skimage", "chelsea", "Stefan van der Walt (Chelsea the cat)", "CC0"),
    Photo("coffee", "heldout", "skimage", "coffee", "Rachel Michetti, courtesy of Pikolo Espresso Bar", "CC0"),
    # matplotlib's sample data
    Photo("grace_hopper", "train", "matplotlib", "grace_hopper.jpg", "U.S. Navy (Rear Admiral Grace Hopper)",
          "public domain (U.S. government work)",
          sha256="a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"),
    # Debian: mate-backgrounds, nature/ (Elephants is a painting; abstract/ and desktop/ hold no photographs)
    _mate("Aqua", "Charles Barbin", "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce"),
    _mate("Blinds", "Lennart Poettering, Andrea Cimitan",
          "f7aac0dcc2e06d0491643e84df3da1d9db7c4610f58806a880d56e074799f600"),
    _mate("Dune", "Marco Cogoni, Hylke Bons", "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91"),
    _mate("FreshFlower", "Jens Ansorg", "972b0a0c4e5e3fa93f4f244fc84bc64b121a5eac3aaa5856f1308c1f38a02f8e"),
    _mate("Garden", "Charles Barbin", "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78"),
    _mate("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei",
          "8fa0de0aa4089f7319c9fb7a6d006d4cab6023e8c8853731557cff53567b4832"),
    _mate("LadyBird", "Charles Barbin", "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d"),
    _mate("RainDrops", '"blackcombwhistler07"', "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16"),
    _mate("Storm", "Sergey Nazarov", "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957"),
    _mate("TwoWings", "Charles Barbin, Hylke Bons", "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb"),
    _mate("Wood", "Jean-François Fortin Tam", "19c78500ac00a622e19907ab9cc7d06d46fe08c4a6142759a84195696150ec07"),
    _mate("YellowFlower", "Charles Barbin", "254da96256acb7add685679775a04d1e4a5bc8cd13e5a5a3d61351ce198a5306"),
    # Debian: plasma-workspace-wallpapers (the photographs; the rest are illustrations)
    _plasma("BytheWater", "Maciej Wiklo", "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f"),
    _plasma("ColdRipple", "Risto Saukonpää", "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f"),
    _plasma("ColorfulCups", "Dmitri Popov", "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d"),
    _plasma("DarkestHour", "Risto Saukonpää", "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce"),
    _plasma("EveningGlow", "Ian Hex", "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a"),
    _plasma("FallenLeaf", "Martin Klapetek", "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de"),
    _plasma("Grey", "Sigi Sagi", "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed"),
    _plasma("Kite", "Risto Saukonpää", "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8"),
    _plasma("OneStandsOut", "Risto Saukonpää", "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd"),
    _plasma("Path", "Risto Saukonpää", "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
            split="heldout"),
    _plasma("summer_1am", "Risto Saukonpää", "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8"),
    # Debian: lomiri-wallpapers-16.04 and -20.04 (analogpattern, umang and the other 20.04 files are not photographs)
    _lomiri("Bridge_by_Sander_Klootwijk.jpg", "Sander Klootwijk", "CC-BY-SA-4.0",
            "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050"),
    _lomiri("Dragonfly_by_Bolly.jpg", '"Bolly"', "CC-BY-SA-4.0",
            "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3"),
    _lomiri("Picture_0B_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0",
            "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad"),
    _lomiri("Picture_1A_by_freespace.jpg", 'Trevor "Freespace"', "CC-BY-4.0",
            "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b", split="heldout"),
    _lomiri("Wine_by_Jakkub_Mede.jpg", "Jakub Mede", "CC-BY-4.0",
            "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74"),
    _lomiri("aitzgorri_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36"),
    _lomiri("free_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0",
            "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373"),
    _lomiri("friends_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d", split="heldout"),
    _lomiri("greentock_by_Peter_Nerlich.jpg", "Peter Nerlich", "CC-BY-SA-4.0",
            "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889"),
    _lomiri("life_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05"),
    _lomiri("picosdeeuropa_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a", split="heldout"),
    _lomiri("seeding_by_Clements_Engelhardt.jpg", "Clemens Engelhardt", "CC0-1.0",
            "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f"),
    _lomiri("sunset_by_Aitzol_Berasategi.jpg", "Aitzol Berasategi", "CC-BY-4.0",
            "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18"),
    _lomiri("Kleiber_by_Lukas_Baubkus.jpg", "Lukas Baubkus", "CC-BY-SA-3.0",
            "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7", release=_LOMIRI20),
    # Debian: gcompris-qt-data, the texture set (held out): fur, feathers, scales and leaves, carved stone
    _gcompris("sheep", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "3bac61d5dabb709cdea2511f63bab6bfcde9736536a39f1f7510f5258a75b088"),
    _gcompris("dog", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "5e9d9544495740101e4cfff817d986b683731112b2cf17fde2e4c2a26c3c5314"),
    _gcompris("owl", "explore_farm_animals", "animals", "GCompris (Bruno Coudoin and others)", "GPL-3",
              "e8b7d705a955799f02eb3e8ded6487991d2c5c8274fee828ac75c0b917b3e237"),
    _gcompris("koala", "explore_world_animals", "animals", "David Iliff (Wikimedia Commons)", "CC-BY-SA-3.0",
              "77b243c27d79f3f5706497af5c1e8e9134f87d634def2b81e2074b572b575d18"),
    _gcompris("lemur", "explore_world_animals", "animals", "Sannse (Wikimedia Commons)", "CC-BY-SA-3.0",
              "4fccf91dd5e6a749d9eb621f982e6a0d7072830db91ba0daabcd86b1de7a9747"),
    _gcompris("hedgehog", "explore_world_animals", "animals", "GCompris contributors", _GCOMPRIS_FILES,
              "780aceaa624415db1f6ff304ed13e804572686316e69d21ee0e13856ef173f7e"),
    _gcompris("jaguar", "explore_world_animals", "animals", "GCompris contributors", _GCOMPRIS_FILES,
              "22704727b6643480c62487ffb2d9fd618a3f499dde84b1eb789d4b0b11477e85"),
    _gcompris("chameleon", "explore_world_animals", "animals", "Laika ac (Wikimedia Commons)", "CC-BY-SA-2.0",
              "f3ececf0133c1301227fdea62d74bce7bcc0d138b048714b116aa4a0744260d5"),
    _gcompris("hawaMahal", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "4edb7eed9db596bd7f3ad98eb34a82c04c32ff1d57aeec80a815c1248feb8e04"),
    _gcompris("ajantaCave", "explore_monuments", "india", "GCompris contributors", _GCOMPRIS_FILES,
              "7dbf980b3711f7557ed4d5748e494c48f72ac34ff601cf1a46f272ff9ab20543"),
    _gcompris("citedeCarcassonne", "explore_monuments", "france", "GCompris contributors", _GCOMPRIS_FILES,
              "b9de4b334e76df53df948de034f4bcc744be682a904ad7c61a9f9f7ac8de326b"),
    _gcompris("wormsCathedral", "explore_monuments", "germany", "GCompris contributors", _GCOMPRIS_FILES,
              "c90cdcbf981bcd5f118b553b059448db6fb0bfe801b40240e02ccd2975b92a59"),
)  # fmt: skip
SPLITS = ("train", "heldout", "texture")
_BY_NAME = {photo.name: photo for photo in PHOTOS}


class PhotoUnavailableError(FileNotFoundError):
    """A registry photo that is not in the photos folder, or whose file is not the one the registry names."""


def get_photo(name: str) -> Photo:
    if name not in _BY_NAME:
        raise ValueError(f"Unknown photo {name!r}; known: {sorted(_BY_NAME)}.")
    return _BY_NAME[name]


def photo_names(split: str) -> list[str]:
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    return [p.name for p in PHOTOS if p.split == split]


def check_training_photos(names: list[str]) -> None:
    """Refuse a held-out photo (of either measurement set) anywhere a training stage reads photos."""
    heldout = sorted(set(names) - set(photo_names("train")))
    if heldout:
        raise ValueError(
            f"Held-out photo(s) {heldout} may not enter a training stage: they measure the model. Train on "
            f"photo_names('train') only."
        )


def default_photos_dir() -> Path:
    """Where fetched photos are cached: `$FLUXIR_PHOTOS_DIR`, else `~/.cache/fluxir_hub/photos`."""
    if os.environ.get("FLUXIR_PHOTOS_DIR"):
        return Path(os.environ["FLUXIR_PHOTOS_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fluxir_hub" / "photos"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def photo_file(photo: Photo, photos_dir: str | Path | None = None) -> Path:
    """The checked file of a matplotlib or Debian photo. Raises [`PhotoUnavailableError`] saying what to do when it
    is missing or its sha256 differs from the registry's."""
    if photo.source == "matplotlib":
        from matplotlib import cbook

        path = Path(cbook.get_sample_data(photo.path, asfileobj=False))
    else:
        path = Path(photos_dir or default_photos_dir()) / photo.file_name
        if not path.is_file():
            where = f"{photo.member} of the Qt bundle {photo.path}" if photo.member else photo.path
            raise PhotoUnavailableError(
                f"Photo {photo.name!r} is not in {path.parent}. Fetch it with `fluxir-build-mini --stages photos`, or "
                f"put {where} from the Debian package {photo.package} ({photo.version}) there as "
                f"{photo.file_name} and pass --photos-dir {path.parent}."
            )
    found = sha256_of(path)
    if found != photo.sha256:
        raise PhotoUnavailableError(
            f"{path} is not the registry's {photo.name!r} (sha256 {found[:12]}..., expected {photo.sha256[:12]}...). "
            "Delete it and fetch it again with `fluxir-build-mini --stages photos`."
        )
    return path


def downscale(image: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """Lanczos-downscale so the longer side is at most `max_side` (smaller images are kept as they are)."""
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.LANCZOS)


def load_photo(name: str, photos_dir: str | Path | None = None) -> Image.Image:
    """A registry photo as RGB PIL, at most [`MAX_SIDE`] px on its longer side (EXIF orientation applied)."""
    photo = get_photo(name)
    if photo.source == "skimage":
        try:
            from skimage import data
        except ImportError as err:
            raise ImportError("The mini model's photos need scikit-image: `pip install scikit-image`.") from err
        if name.startswith("motorcycle_"):
            left, right, _ = data.stereo_motorcycle()
            array = left if name.endswith("left") else right
        else:
            array = getattr(data, photo.path)()
        return downscale(Image.fromarray(np.ascontiguousarray(array[..., :3])).convert("RGB"))
    with Image.open(photo_file(photo, photos_dir)) as image:
        return downscale(ImageOps.exif_transpose(image).convert("RGB"))


def photos_as_tensors(names: list[str], photos_dir: str | Path | None = None) -> list[torch.Tensor]:
    """`(3, H, W)` float tensors in [-1, 1] (the VAE's range)."""
    return [
        torch.from_numpy(np.asarray(load_photo(n, photos_dir), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
        for n in names
    ]


FLAT_PATCH_STD = 0.04  # in [-1, 1] units: a patch this uniform (black sky, microscope background) teaches nothing


def sample_patches(
    photos: list[torch.Tensor],
    batch: int,
    size: int,
    generator: torch.Generator,
    augment: bool = True,
    max_tries: int = 8,
    channel_shuffle: bool = True,
) -> torch.Tensor:
    """
    `batch` random `size`-pixel square crops `(batch, 3, size, size)`, each from a photo drawn uniformly (so the large,
    mostly black astronomy and retina images do not dominate). With `augment`: random flips and 90-degree turns, and
    with `channel_shuffle` a random order of the colour channels. Nearly uniform crops are redrawn up to `max_tries`
    times.
    """
    out = []
    for _ in range(batch):
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        for _ in range(max_tries):
            top = int(torch.randint(0, photo.shape[1] - size + 1, (1,), generator=generator))
            left = int(torch.randint(0, photo.shape[2] - size + 1, (1,), generator=generator))
            patch = photo[:, top : top + size, left : left + size]
            if patch.std() > FLAT_PATCH_STD:
                break
        if augment:
            flip, turns = (
                torch.randint(0, 2, (1,), generator=generator),
                torch.randint(0, 4, (1,), generator=generator),
            )
            if int(flip):
                patch = patch.flip(-1)
            patch = torch.rot90(patch, int(turns), dims=(1, 2))
            if channel_shuffle:
                patch = patch[torch.randperm(3, generator=generator)]
        out.append(patch)
    return torch.stack(out)
