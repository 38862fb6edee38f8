"""Our degradation against Real-ESRGAN's reference implementation (BasicSR), same CPU, same settings.

    pip download --no-deps basicsr==1.4.2 && tar xzf basicsr-1.4.2.tar.gz
    python benchmarks/degradation_vs_reference.py --basicsr-src basicsr-1.4.2 [--images 32]

The reference is BasicSR's own code, loaded from its source folder (nothing of it is copied here): kernel sampling as
in `RealESRGANDataset.__getitem__` and the two-stage synthesis as in `RealESRGANModel.feed_data`, driven one image at
a time on the CPU. BasicSR 1.4.2 imports `torchvision.transforms.functional_tensor`, removed from torchvision, so a
one-function alias is registered before loading. Both sides use the `realesrgan` settings (stage-2 kernels up to 21
px, USM on), 512x512 HQ -> 128x128 LQ.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import random
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/...` from a fresh clone: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))


def load_basicsr(src: Path):
    """Import BasicSR's degradation, filtering and JPEG modules straight from their files."""
    import torchvision.transforms.functional as tvf

    shim = types.ModuleType("torchvision.transforms.functional_tensor")
    shim.rgb_to_grayscale = tvf.rgb_to_grayscale
    sys.modules.setdefault("torchvision.transforms.functional_tensor", shim)
    modules = {}
    for name, rel in (("degradations", "data/degradations.py"), ("img_process_util", "utils/img_process_util.py"),
                      ("diffjpeg", "utils/diffjpeg.py")):  # fmt: skip
        path = src / "basicsr" / rel
        if not path.exists():
            raise SystemExit(f"{path} not found: --basicsr-src must be an extracted basicsr source folder.")
        spec = importlib.util.spec_from_file_location(f"basicsr_ref_{name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        modules[name] = module
    return modules


class Reference:
    """Real-ESRGAN's pipeline with its published settings, built from BasicSR's functions."""

    KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
    PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]

    def __init__(self, basicsr):
        self.deg = basicsr["degradations"]
        self.filter2D = basicsr["img_process_util"].filter2D
        self.usm = basicsr["img_process_util"].USMSharp()
        self.jpeger = basicsr["diffjpeg"].DiffJPEG(differentiable=False)

    def _kernel(self, sigma):
        size = random.choice(range(7, 22, 2))
        if np.random.uniform() < 0.1:
            omega = np.random.uniform(np.pi / 3 if size < 13 else np.pi / 5, np.pi)
            kernel = self.deg.circular_lowpass_kernel(omega, size, pad_to=False)
        else:
            kernel = self.deg.random_mixed_kernels(self.KERNELS, self.PROBS, size, sigma, sigma, [-math.pi, math.pi],
                                                   [0.5, 4], [1, 2], noise_range=None)  # fmt: skip
        pad = (21 - size) // 2
        return torch.FloatTensor(np.pad(kernel, ((pad, pad), (pad, pad))))

    def _resize_factor(self, probs, low, high):
        kind = random.choices(["up", "down", "keep"], probs)[0]
        return np.random.uniform(1, high) if kind == "up" else np.random.uniform(low, 1) if kind == "down" else 1

    def _noise(self, out, sigma, poisson):
        if np.random.uniform() < 0.5:
            return self.deg.random_add_gaussian_noise_pt(
                out, sigma_range=sigma, clip=True, rounds=False, gray_prob=0.4
            )
        return self.deg.random_add_poisson_noise_pt(out, scale_range=poisson, gray_prob=0.4, clip=True, rounds=False)

    def _jpeg(self, out):
        quality = out.new_zeros(out.size(0)).uniform_(30, 95)
        return self.jpeger(torch.clamp(out, 0, 1), quality=quality)

    @torch.no_grad()
    def __call__(self, gt: torch.Tensor, scale: int = 4) -> torch.Tensor:
        kernel1, kernel2 = self._kernel([0.2, 3]), self._kernel([0.2, 1.5])
        omega = np.random.uniform(np.pi / 3, np.pi)
        sinc = torch.FloatTensor(self.deg.circular_lowpass_kernel(omega, random.choice(range(7, 22, 2)), pad_to=21))
        if np.random.uniform() >= 0.8:
            sinc = torch.zeros(21, 21)
            sinc[10, 10] = 1
        h, w = gt.shape[-2:]
        out = self.filter2D(self.usm(gt), kernel1[None])
        out = F.interpolate(out, scale_factor=self._resize_factor([0.2, 0.7, 0.1], 0.15, 1.5),
                            mode=random.choice(["area", "bilinear", "bicubic"]))  # fmt: skip
        out = self._jpeg(self._noise(out, [1, 30], [0.05, 3]))
        if np.random.uniform() < 0.8:
            out = self.filter2D(out, kernel2[None])
        factor = self._resize_factor([0.3, 0.4, 0.3], 0.3, 1.2)
        out = F.interpolate(out, size=(int(h / scale * factor), int(w / scale * factor)),
                            mode=random.choice(["area", "bilinear", "bicubic"]))  # fmt: skip
        out = self._noise(out, [1, 25], [0.05, 2.5])
        mode = random.choice(["area", "bilinear", "bicubic"])
        if np.random.uniform() < 0.5:
            out = self.filter2D(F.interpolate(out, size=(h // scale, w // scale), mode=mode), sinc[None])
            out = self._jpeg(out)
        else:
            out = self._jpeg(out)
            out = self.filter2D(F.interpolate(out, size=(h // scale, w // scale), mode=mode), sinc[None])
        return torch.clamp((out * 255.0).round(), 0, 255) / 255.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--basicsr-src", required=True, type=Path)
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()

    from benchmarks._common import hq_images
    from dataset_builder import degrade

    images = hq_images(args.images)
    tensors = [torch.from_numpy(np.asarray(im, dtype=np.float32) / 255).permute(2, 0, 1)[None] for im in images]
    reference = Reference(load_basicsr(args.basicsr_src))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    reference(tensors[0])
    degrade(images[0], preset="realesrgan", seed=0)  # warm-up both

    start = time.perf_counter()
    for tensor in tensors:
        lq = reference(tensor)
    ref_rate = args.images / (time.perf_counter() - start)
    start = time.perf_counter()
    for seed, image in enumerate(images):
        ours = degrade(image, preset="realesrgan", seed=seed).lq
    our_rate = args.images / (time.perf_counter() - start)
    assert tuple(lq.shape[-2:]) == ours.size[::-1]
    print(f"512x512 HQ -> 128x128 LQ, realesrgan settings, 1 process, torch threads {torch.get_num_threads()}")
    print(f"  BasicSR reference : {ref_rate:6.1f} images/s")
    print(f"  dataset_builder   : {our_rate:6.1f} images/s   ({our_rate / ref_rate:.2f}x)")


if __name__ == "__main__":
    main()
