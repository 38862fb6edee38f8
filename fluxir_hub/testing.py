"""Test helpers: the tiny offline FLUX stack ([`fluxir_hub.tiny`], re-exported here), a hand-made Hub cache, small
real photos and a FluxGen-like pairs folder made from them (tests and benchmarks).

```py
from fluxir_hub.testing import make_hub_cache, tiny_pipeline
```
"""

from __future__ import annotations

from .flux_configs import FLUX_DEV_TRANSFORMER_CONFIG, FLUX_SCHEDULER_CONFIG  # noqa: F401
from .tiny import (  # noqa: F401
    T5_MAX_LENGTH,
    TEXT_WIDTH,
    TRANSFORMER_SIZES,
    tiny_adapter,
    tiny_components,
    tiny_pipeline,
    tiny_text_components,
    tiny_transformer,
    tiny_vae,
)


def make_hub_cache(folder, repo_id: str, cache_dir, repo_type: str = "model", revision: str | None = None) -> str:
    """
    Lay out `folder` as if it had been downloaded from the Hub into `cache_dir`, so `from_pretrained(repo_id,
    cache_dir=cache_dir)`, `snapshot_download` and `load_dataset` find it with `HF_HUB_OFFLINE=1`.

    Returns the snapshot path (`<cache_dir>/<models|datasets>--org--name/snapshots/<revision>`).
    """
    import hashlib
    import shutil
    from pathlib import Path

    folder, cache_dir = Path(folder), Path(cache_dir)
    revision = revision or hashlib.sha1(repo_id.encode()).hexdigest()
    repo_folder = cache_dir / f"{repo_type}s--{repo_id.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / revision
    shutil.copytree(folder, snapshot, dirs_exist_ok=True)
    (repo_folder / "refs").mkdir(parents=True, exist_ok=True)
    (repo_folder / "refs" / "main").write_text(revision)
    return str(snapshot)


def photo(name: str = "astronaut", size: tuple[int, int] = (32, 24)):
    """A real photo from skimage.data, resized to `size` (width, height), as RGB."""
    import numpy as np
    from PIL import Image
    from skimage import data

    array = getattr(data, name)()
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return Image.fromarray(array[..., :3]).resize(size, Image.BICUBIC)


def make_pairs_folder(folder, names=("astronaut", "chelsea"), size=(128, 128), scale=4, extra_columns=None):
    """A FluxGen-like `datasets` folder (data/train-*.parquet with hq/lq image columns) from skimage photos."""
    import io
    from pathlib import Path

    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    from dataset_builder import degrade

    rows = {"id": [], "hq": [], "lq": [], "prompt": []}
    for i, name in enumerate(names):
        hq = photo(name, size)
        lq = degrade(hq, preset="mild", scale=scale, seed=i).lq
        for key, image in (("hq", hq), ("lq", lq)):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            rows[key].append({"bytes": buffer.getvalue(), "path": f"{i}_{key}.png"})
        rows["id"].append(f"{i:08d}")
        rows["prompt"].append("")
    features = {"id": Value("string"), "hq": ImageFeature(), "lq": ImageFeature(), "prompt": Value("string")}
    for key, values in (extra_columns or {}).items():
        rows[key] = values
        features[key] = Value("string")
    data = Path(folder) / "data"
    data.mkdir(parents=True, exist_ok=True)
    Dataset.from_dict(rows, features=Features(features)).to_parquet(str(data / "train-00000-of-00001.parquet"))
    return Path(folder)
