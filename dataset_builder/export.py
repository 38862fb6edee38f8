"""Stage 5: export the kept pairs as a Hub-style `datasets` folder (parquet shards + dataset card)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image

from fluxir_hub.degradations import TASKS, record_task
from fluxir_hub.distributed import process_state, shard, stop_if_any_failed
from fluxir_hub.files import atomic_write
from fluxir_hub.licences import card_licence, size_category

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
            "task": Value("string"),
            "generator_model": Value("string"),
            "generator_revision": Value("string"),
            "scores": {m: Value("float64") for m in metrics},
            "degradation": Value("string"),
        }
    )


def _checked_bytes(path: Path, redo: str) -> tuple[bytes, tuple[int, int]]:
    """The file's bytes and image size, after checking that they are a complete image; a damaged file is named with
    how to redo it."""
    import io

    from PIL import Image

    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as image:
            size = image.size
            image.verify()  # structure and checksums: catches truncated and damaged files without decoding
    except Exception as err:
        raise ValueError(f"{path} is damaged ({err.__class__.__name__}: {err}); {redo}") from err
    return data, size


def _provenance(layout: BuildLayout, image_id: str) -> dict:
    """What a row says about where it came from (no image bytes: cheap to read for every row)."""
    seed = int(image_id)
    meta = read_image_metadata(layout.image_path(seed))
    record = json.loads(layout.lq_params_path(seed).read_text())
    hq_path = layout.target_path(seed) if record.get("target") == "usm" else layout.image_path(seed)
    with Image.open(hq_path) as image:  # the header only
        hq_size = image.size
    return {
        "seed": seed,
        "prompt": meta["prompt"],
        "task": record_task(record),
        "generator_model": meta["model"],
        "generator_revision": meta["revision"],
        "_sampling": (meta.get("guidance_scale"), meta.get("num_inference_steps"), meta.get("prompt") != "", hq_size),
        "degradation": json.dumps(record),
    }


def _row(layout: BuildLayout, image_id: str, scores: dict[str, float]) -> dict:
    seed = int(image_id)
    redo_hq = f"delete it and rerun `fluxgen run` to regenerate, rescore and reselect image {image_id}."
    redo_lq = "delete it and its .json record and rerun `fluxgen degrade` to remake it."
    provenance = _provenance(layout, image_id)
    if json.loads(provenance["degradation"]).get("target") == "usm":  # the sharpened target the LQ was made from
        hq, _ = _checked_bytes(layout.target_path(seed), redo_lq)
    else:
        hq, _ = _checked_bytes(layout.image_path(seed), redo_hq)
    lq, _ = _checked_bytes(layout.lq_path(seed), redo_lq)
    row = {
        **provenance,
        "id": image_id,
        "hq": {"bytes": hq, "path": f"{image_id}_hq.png"},
        "lq": {"bytes": lq, "path": f"{image_id}_lq.png"},
        "scores": scores,
    }
    return {name: row[name] for name in (*_features([]), "_sampling")}  # the columns in the features' order


def plan_shards(sizes: list[int], max_bytes: int, max_rows: int) -> list[tuple[int, int]]:
    """`[start, end)` row ranges: consecutive rows until the next would pass `max_bytes` or `max_rows` (a single row
    larger than `max_bytes` gets a shard of its own)."""
    shards, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and (total + size > max_bytes or index - start >= max_rows):
            shards.append((start, index))
            start, total = index, 0
        total += size
    shards.append((start, len(sizes)))
    return shards


def _row_bytes(layout: BuildLayout, image_id: str) -> int:
    seed = int(image_id)
    hq = layout.target_path(seed) if layout.target_path(seed).exists() else layout.image_path(seed)
    return hq.stat().st_size + layout.lq_path(seed).stat().st_size


def write_split(
    layout: BuildLayout, split: str, ids: list[str], scores: dict, metrics: list[str], max_bytes: int, max_rows: int
) -> list[Path]:
    """Plan one split's parquet shards (by image bytes, as `datasets` shards) and write this process's share of
    them; returns the paths of every planned shard. The plan depends on the rows alone, so the files are the same
    for any number of processes."""
    from datasets import Dataset

    data_dir = layout.dataset_dir / "data"
    shards = plan_shards([_row_bytes(layout, i) for i in ids], max_bytes, max_rows)
    n_shards = len(shards)
    paths = [data_dir / f"{split}-{index:05d}-of-{n_shards:05d}.parquet" for index in range(n_shards)]
    for index, (start, end) in shard(list(enumerate(shards))):
        rows = [_row(layout, i, {m: scores[i][m] for m in metrics}) for i in ids[start:end]]
        dataset = Dataset.from_list(
            [{k: v for k, v in r.items() if k != "_sampling"} for r in rows], features=_features(metrics)
        )
        atomic_write(paths[index], lambda tmp, dataset=dataset: dataset.to_parquet(tmp))
    return paths


def exported_facts(provenance: list[dict]) -> dict:
    """What the exported rows themselves say: generators, seeds and degradation settings, for the card."""
    records = [json.loads(row["degradation"]) for row in provenance]
    seeds = sorted(row["seed"] for row in provenance)
    return {
        "generators": sorted({f"{row['generator_model']}@{row['generator_revision']}" for row in provenance}),
        "seed_min": seeds[0],
        "seed_max": seeds[-1],
        "presets": sorted({r["preset"] for r in records}),
        "targets": sorted({r.get("target", "hq") for r in records}),
        "scales": sorted({r["scale"] for r in records}),
        "tasks": {
            task: sum(record_task(r) == task for r in records) for task in sorted({record_task(r) for r in records})
        },
        "degradation_seed_offsets": sorted(
            {r["seed"] - row["seed"] for r, row in zip(records, provenance, strict=True)}
        ),
        # (guidance, steps, prompted, HQ size) per image; guidance/steps None where older builds did not record them
        "sampling": sorted({tuple(row["_sampling"]) for row in provenance}, key=str),
    }


def render_card(
    config: FluxGenConfig, selection: dict, n_train: int, n_validation: int, repo_id: str | None, facts: dict
) -> str:
    """The dataset card. Everything it states about the data comes from the exported rows (`facts`) and the
    selection, so it matches the parquet files whatever settings earlier runs into the folder used."""
    from huggingface_hub import DatasetCard, DatasetCardData

    gen = config.generate
    models = sorted({g.rsplit("@", 1)[0] for g in facts["generators"]})
    licences = [
        GENERATOR_LICENSES.get(m, ("other", f"Check the licence of `{m}`: generated images may carry its terms."))
        for m in models
    ]
    license_note = " ".join(note for _, note in licences)
    total = n_train + n_validation
    # No `configs:` block: `datasets` finds the splits from the `data/<split>-*.parquet` names, and fingerprints
    # the files themselves. With the block, every folder named `dataset` shared one cache entry (stale rows).
    card_data = DatasetCardData(
        task_categories=["image-to-image"],
        tags=["image-restoration", "super-resolution", "synthetic", "fluxgen", "flux"],
        size_categories=[size_category(total)],
        pretty_name="FluxGen restoration pairs",
        **card_licence(models),
    )
    card = DatasetCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        pretty_name="FluxGen restoration pairs",
        repo_id=repo_id or "path/to/this/folder",
        generators=facts["generators"],
        prompt_description=_prompt_description(facts, gen),
        sampling=_sampling_description(facts, gen),
        seed_min=facts["seed_min"],
        seed_max=facts["seed_max"],
        metrics=selection["metrics"],
        quantile_percent=round(100 * selection.get("quantile", config.select.quantile), 2),
        lower_better_metrics=[m for m, low in selection.get("lower_better", {}).items() if low],
        thresholds=selection["thresholds"],
        presets=facts["presets"],
        targets=facts["targets"],
        scales=facts["scales"],
        tasks=facts["tasks"],
        task_prompts={task: TASKS[task].prompt for task in facts["tasks"] if task in TASKS},
        seed_offsets=facts["degradation_seed_offsets"],
        counts=selection["counts"],
        n_train=n_train,
        n_validation=n_validation,
        format_version=config.format_version,
        license_note=license_note,
    )
    return str(card)


def _prompt_description(facts: dict, gen) -> str:
    prompted = {prompted for _, _, prompted, _ in facts["sampling"]}
    if prompted == {False}:
        return "empty"
    source = f" from `{Path(gen.prompts_file).name}`" if gen.prompts_file else ""
    return f"one per image{source}" + (" (some images used the empty prompt)" if False in prompted else "")


def _sampling_description(facts: dict, gen) -> str:
    parts = set()
    for guidance, steps, _, (width, height) in facts["sampling"]:
        if guidance is None:  # images from before these settings were recorded per image
            guidance, steps = f"{gen.guidance_scale} (build setting)", f"{gen.num_inference_steps} (build setting)"
        parts.add(f"guidance {guidance}, {steps} steps, {width}x{height}")
    return " / ".join(sorted(parts))


def export_dataset(root, config: FluxGenConfig, repo_id: str | None = None) -> dict:
    """Write `root/dataset/` (data/*.parquet and README.md), each process its share of the shards and the main one
    the card; returns the split sizes."""
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
    metrics = selection.get("metrics") or config.score.metrics  # older selections did not record them
    selection["metrics"] = metrics
    train, validation = split_ids(kept, config.export.validation_fraction)

    state = process_state()
    written, error = [], None
    try:  # every process writes its share of the shards
        for split, ids in (("train", train), ("validation", validation)):
            if ids:
                written += write_split(
                    layout, split, ids, scores, metrics, config.export.max_shard_bytes, config.export.rows_per_shard
                )
    except (OSError, ValueError) as err:
        error = str(err)
    stop_if_any_failed(error, state)  # all shards written (or every process stops)
    if state.is_main_process:
        for stale in (layout.dataset_dir / "data").glob("*.parquet"):  # shards of an earlier, larger export
            if stale not in written:
                stale.unlink()
        provenance = [_provenance(layout, i) for i in train + validation]
        atomic_write_text(
            layout.dataset_dir / "README.md",
            render_card(config, selection, len(train), len(validation), repo_id, exported_facts(provenance)),
        )
        config.save(layout.dataset_dir)
    state.wait_for_everyone()
    return {"train": len(train), "validation": len(validation)}
