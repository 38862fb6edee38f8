"""Regenerate the demo's example inputs: public-domain photos from scikit-image, degraded with FluxGen's `seesr`
preset (x4 down, seeded), so the examples look like the real-world inputs FluxIR is trained for.

    python demo/make_examples.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

EXAMPLES = {"astronaut": 0, "chelsea": 1, "coffee": 2}  # skimage.data name -> degradation seed
HQ_SIDE = 512
FOLDER = Path(__file__).parent / "examples"


def main() -> None:
    from skimage import data

    from dataset_builder import degrade

    FOLDER.mkdir(exist_ok=True)
    for name, seed in EXAMPLES.items():
        array = getattr(data, name)()[..., :3]
        side = min(array.shape[:2])
        top, left = (array.shape[0] - side) // 2, (array.shape[1] - side) // 2
        hq = Image.fromarray(np.ascontiguousarray(array[top : top + side, left : left + side]))
        hq = hq.resize((HQ_SIDE, HQ_SIDE), Image.LANCZOS)
        degraded = degrade(hq, preset="seesr", scale=4, seed=seed)
        degraded.lq.save(FOLDER / f"{name}.png")
        print(f"{name}: {degraded.lq.size}")


if __name__ == "__main__":
    main()
