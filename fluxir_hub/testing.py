"""Test helpers: the tiny offline FLUX stack ([`fluxir_hub.tiny`], re-exported here) and a hand-made Hub cache.

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
