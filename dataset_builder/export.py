"""Stage 5: export the kept pairs as a Hub-style `datasets` folder (parquet shards + dataset card)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fluxir_hub.files import atomic_write

from .config import GENERATOR_LICENSES, FluxGenConfig
from .generate import read_image_metadata
from .io_utils import BuildLayout, atomic_write_text

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md"


def split_ids(ids: list[str], validation_fraction: float) -> tuple[list[str], list[str]]:
    """Deterministic train/validation split by a hash of the id (stable when the pool grows)."""
    if validation_fraction <= 0 or len(ids) < 2:
        return sorted(ids), []
    n_validation = max(1, round(len(ids) * validation_fraction))
    ranked = sorted(ids, key=lambda i: hashlib.sha1(i.encode()).hexdigest())
    validation = set(ranked[:n_validation])
    return sorted(i for i in ids if i not in validation), sorted(validation)


def _features(metrics: list[str]):
    from datasets import Features, Image, Value

    return Features(
        {
            "id": Value("string"),
            "seed": Value("int64"),
            "hq": Image(),
            "lq": Image(),
            "prompt": Value("string"),
            "generator_model": Value("string"),
            "generator_revision": Value("string"),
            "scores": {m: Value("float64") for m in metrics},
            "degradation": Value("string"),
        }
    )


def _row(layout: BuildLayout, image_id: str, scores: dict[str, float]) -> dict:
    seed = int(image_id)
    meta = read_image_metadata(layout.image_path(seed))
    return {
        "id": image_id,
        "seed": seed,
        "hq": {"bytes": layout.image_path(seed).read_bytes(), "path": f"{image_id}_hq.png"},
        "lq": {"bytes": layout.lq_path(seed).read_bytes(), "path": f"{image_id}_lq.png"},
        "prompt": meta["prompt"],
        "generator_model": meta["model"],
        "generator_revision": meta["revision"],
        "scores": scores,
        "degradation": layout.lq_params_path(seed).read_text(),
    }


def write_split(
    layout: BuildLayout, split: str, ids: list[str], scores: dict, metrics: list[str], rows_per_shard: int
):
    from datasets import Dataset

    data_dir = layout.dataset_dir / "data"
    n_shards = max(1, -(-len(ids) // rows_per_shard))
    written = []
    for shard in range(n_shards):
        chunk = ids[shard * rows_per_shard : (shard + 1) * rows_per_shard]
        dataset = Dataset.from_list([_row(layout, i, scores[i]) for i in chunk], features=_features(metrics))
        path = data_dir / f"{split}-{shard:05d}-of-{n_shards:05d}.parquet"
        atomic_write(path, lambda tmp, dataset=dataset: dataset.to_parquet(tmp))
        written.append(path)
    return written


def render_card(config: FluxGenConfig, selection: dict, n_train: int, n_validation: int, repo_id: str | None) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    gen = config.generate
    model_key = gen.model if gen.model in GENERATOR_LICENSES else None
    license_id, license_note = GENERATOR_LICENSES.get(
        model_key, ("other", f"Check the licence of `{gen.model}`: generated images may carry its terms.")
    )
    total = n_train + n_validation
    size = (
        "n<1K" if total < 1000 else "1K<n<10K" if total < 10_000 else "10K<n<100K" if total < 100_000 else "100K<n<1M"
    )
    data_files = [{"split": "train", "path": "data/train-*"}]
    if n_validation:
        data_files.append({"split": "validation", "path": "data/validation-*"})
    card_data = DatasetCardData(
        license=license_id,
        task_categories=["image-to-image"],
        tags=["image-restoration", "super-resolution", "synthetic", "fluxgen", "flux"],
        size_categories=[size],
        pretty_name="FluxGen restoration pairs",
        configs=[{"config_name": "default", "data_files": data_files}],
    )
    card = DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name="FluxGen restoration pairs",
        repo_id=repo_id or "path/to/this/folder",
        generator_model=gen.model,
        generator_revision=_revision(selection, gen),
        prompt_description=f"one per image from `{Path(gen.prompts_file).name}`" if gen.prompts_file else "empty",
        guidance_scale=gen.guidance_scale,
        num_inference_steps=gen.num_inference_steps,
        width=gen.width,
        height=gen.height,
        seed_start=gen.seed_start,
        seed_end=gen.seed_end,
        metrics=config.score.metrics,
        quantile_percent=round(100 * config.select.quantile, 2),
        lower_better_metrics=[m for m, low in selection.get("lower_better", {}).items() if low],
        thresholds=selection["thresholds"],
        preset=config.degrade.preset,
        scale=config.degrade.scale,
        seed_offset=config.degrade.seed_offset,
        counts=selection["counts"],
        n_train=n_train,
        n_validation=n_validation,
        format_version=config.format_version,
        license_note=license_note,
    )
    return str(card)


def _revision(selection: dict, gen) -> str:
    return selection.get("generator_revision") or gen.revision or "unknown"


def export_dataset(root, config: FluxGenConfig, repo_id: str | None = None) -> dict:
    """Write `root/dataset/` (data/*.parquet and README.md); returns the split sizes."""
    from .score import load_scores

    layout = BuildLayout(root)
    if not layout.selection_path.exists():
        raise ValueError("No selection.json yet; run `fluxgen select` first.")
    selection = json.loads(layout.selection_path.read_text())
    kept = selection["kept"]
    missing = [i for i in kept if not layout.lq_path(int(i)).exists()]
    if missing:
        raise ValueError(f"{len(missing)} kept image(s) have no LQ yet (e.g. {missing[0]}); run `fluxgen degrade`.")
    if not kept:
        raise ValueError("The selection kept no images; nothing to export.")
    scores, _ = load_scores(layout)
    selection["generator_revision"] = read_image_metadata(layout.image_path(int(kept[0])))["revision"]
    train, validation = split_ids(kept, config.export.validation_fraction)

    data_dir = layout.dataset_dir / "data"
    written = []
    for split, ids in (("train", train), ("validation", validation)):
        if ids:
            written += write_split(layout, split, ids, scores, config.score.metrics, config.export.rows_per_shard)
    for stale in data_dir.glob("*.parquet"):  # shards of an earlier, larger export
        if stale not in written:
            stale.unlink()
    atomic_write_text(
        layout.dataset_dir / "README.md", render_card(config, selection, len(train), len(validation), repo_id)
    )
    config.save(layout.dataset_dir)
    return {"train": len(train), "validation": len(validation)}
