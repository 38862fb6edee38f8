"""Reading user images into upright 8-bit RGB, whatever the file's mode, bit depth or EXIF orientation; normalising
in-memory images (PIL, arrays, tensors) the way the pipeline takes them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

# The common formats, named in messages; folders are scanned for every extension Pillow can open (`image_extensions`).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

# Refuse decompression bombs before decoding: a 40,000 x 40,000 image would need 4.8 GB as RGB.
MAX_INPUT_PIXELS = 100_000_000


class ImageLoadError(ValueError):
    """A file could not be read as an image; the message says which file and what to do."""


def to_rgb(image: Image.Image) -> Image.Image:
    """
    Convert a PIL image of any mode to upright 8-bit RGB.

    EXIF orientation is applied; transparent pixels (RGBA, LA, P with transparency) are composited on white;
    16- and 32-bit greyscale (I;16, I, F) are rescaled from their full range rather than clipped; CMYK and YCbCr go
    through PIL's conversion.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "RGB" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    return image.convert("RGB")


def load_image(source: str | os.PathLike | Image.Image) -> Image.Image:
    """
    Open `source` (a path or a PIL image) and return it as upright 8-bit RGB.

    Raises:
        ImageLoadError: the file is missing, empty, truncated, not an image, or larger than `MAX_INPUT_PIXELS`.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    path = Path(source)
    if not path.is_file():
        raise ImageLoadError(not_a_file_message(path))
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: the file is empty (0 bytes); re-export or re-download it.")
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_INPUT_PIXELS:
                raise ImageLoadError(
                    f"{path}: {image.width}x{image.height} is larger than {MAX_INPUT_PIXELS:,} pixels; "
                    "downscale or crop it first."
                )
            image.load()
            return to_rgb(image)
    except ImageLoadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise ImageLoadError(
            f"{path}: not a readable image ({err}). Supported formats include {', '.join(IMAGE_EXTENSIONS)}."
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"{path}: the image data is damaged or truncated ({err}); re-export the file.") from err


def not_a_file_message(path: Path) -> str:
    """Why `path` (not a regular file) cannot be read: missing, or a FIFO, device or socket that may never end."""
    if not path.exists():
        return f"{path}: no such file."
    return f"{path}: not a regular file (a folder, pipe, device or socket); pass an image file."


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Every file extension the installed Pillow can open (e.g. `.gif`, and `.avif` where Pillow has it)."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


@dataclass
class FoundImages:
    """What [`find_images`] found: the image paths, and each skipped folder entry with the reason."""

    paths: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)

    def skipped_summary(self, limit: int = 5) -> str:
        items = [f"{p.name} ({why})" for p, why in list(self.skipped.items())[:limit]]
        more = len(self.skipped) - limit
        return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def find_images(inputs: list[str | os.PathLike]) -> FoundImages:
    """
    Expand files and folders into image paths, without duplicates. One rule for both: a file is taken when Pillow
    can open its extension; explicit files are always taken (a bad one then fails with a clear message). Folders are
    read non-recursively and sorted; their hidden files and files of other types are listed in `skipped`.

    Raises:
        FileNotFoundError: an input does not exist.
        ImageLoadError: an input is a pipe, device or socket (checked before anything opens it: a FIFO would block).
    """
    found = FoundImages()
    seen: set[Path] = set()
    extensions = image_extensions()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.paths.append(path)

    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for path in sorted(p for p in item.iterdir() if p.is_file()):
                if path.name.startswith("."):
                    found.skipped[path] = "hidden file"
                elif path.suffix.lower() not in extensions:
                    found.skipped[path] = f"'{path.suffix or 'no extension'}' is not an image type Pillow can read"
                else:
                    add(path)
        elif item.is_file():
            add(item)
        elif item.exists():
            raise ImageLoadError(not_a_file_message(item))
        else:
            raise FileNotFoundError(f"{item}: no such file or folder.")
    return found


# ------------------------------------------------------------------ in-memory images (the pipeline's inputs)
def image_size(image: Image.Image | np.ndarray | torch.Tensor) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):  # (H, W, C) or (H, W)
        return image.shape[1], image.shape[0]
    return image.shape[-1], image.shape[-2]  # (C, H, W) or (B, C, H, W)


def as_image_list(image) -> list:
    if image is None:
        raise ValueError("`image` is required: pass a PIL image, an array or tensor, or a list of them.")
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError("`image` is empty: pass at least one image.")
        # a list of batches, e.g. `(1, 3, H, W)` tensors, is concatenated as diffusers' `VaeImageProcessor` does
        return [item for batch in image for item in as_image_list(batch)]
    if isinstance(image, (torch.Tensor, np.ndarray)) and image.ndim == 4:
        return list(image)
    return [image]


def tensor_to_pil(image) -> Image.Image:
    """A normalised image (upright RGB PIL, or a `(3, H, W)` tensor in [0, 1]) as a PIL image, for a captioner."""
    if isinstance(image, Image.Image):
        return image
    array = (image.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def normalise_image(image):
    """
    PIL of any mode -> upright RGB PIL. Integer arrays (8- or 16-bit) -> PIL; float arrays and tensors are taken as
    [0, 1] and returned as `(3, H, W)` float tensors. Greyscale is repeated to RGB. Anything else (other types,
    channel counts, non-finite or out-of-range values) is refused with a message that says how to pass it.
    """
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        if image.dtype == np.uint8 or image.dtype == np.uint16:
            if image.ndim == 3 and image.shape[-1] == 1:
                image = image[..., 0]
            if image.ndim == 3 and image.shape[-1] not in (3, 4):
                raise ValueError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}.")
            if image.dtype == np.uint16:  # 16-bit: keep the full range, in 8 bits
                image = (image.astype(np.float64) / 257.0 + 0.5).astype(np.uint8)
            return to_rgb(Image.fromarray(image))
        if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.floating):
            raise ValueError(
                f"Image arrays must be uint8, uint16 or float in [0, 1], got dtype {image.dtype}; convert it first "
                "(e.g. `array.astype(np.float32)` for a mask in {0, 1})."
            )
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3:
            raise ValueError(f"An image array must be (H, W) or (H, W, C), got shape {image.shape}.")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    if isinstance(image, torch.Tensor):
        if image.dtype == torch.bool or not image.is_floating_point():
            raise ValueError(f"Image tensors must be float in [0, 1], got dtype {image.dtype}.")
        if image.ndim == 2:
            image = image[None]
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise ValueError(
                f"An image tensor must be (3, H, W) or (1, H, W) in [0, 1], got shape {tuple(image.shape)}; drop the "
                "alpha channel or pass a PIL image (transparency is then composited on white)."
            )
        if image.numel() == 0:
            raise ValueError(f"The image tensor has no pixels (shape {tuple(image.shape)}).")
        if not torch.isfinite(image).all():
            raise ValueError("The image holds NaN or infinite values.")
        if image.min() < -1e-3 or image.max() > 1 + 1e-3:
            raise ValueError(
                f"Float images must be in [0, 1], got values from {image.min().item():.3g} to {image.max().item():.3g}."
            )
        return image.float().clamp(0, 1).expand(3, -1, -1)
    raise ValueError(
        f"`image` must be a PIL image, a numpy array or a torch tensor (or a list of them), got {type(image).__name__}."
    )
