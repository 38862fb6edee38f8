"""Reading user images into upright 8-bit RGB, whatever the file's mode, bit depth or EXIF orientation."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
        raise ImageLoadError(f"{path}: no such file.")
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


def find_images(inputs: list[str | os.PathLike]) -> list[Path]:
    """Expand files and folders (non-recursive, sorted) into a list of image paths; a missing input is an error."""
    paths: list[Path] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            paths.extend(sorted(p for p in item.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        elif item.exists():
            paths.append(item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder.")
    return paths
