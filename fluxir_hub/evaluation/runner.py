"""Restore a benchmark with a method, and score results with the paper's metrics (resumable, per-image CSV)."""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..distributed import process_state, shard
from ..files import atomic_save_png, atomic_write_text
from ..tasks import TASKS
from .benchmarks import benchmark_names, benchmark_tasks
from .metrics import FULL_REFERENCE

METHODS = ("bicubic", "fluxir", "realesrgan", "spandrel")  # the last two: `pipe` is a baselines restorer


SETTINGS_NAME = "restore_settings.json"


def adapter_identity(pipe) -> dict:
    """What a FluxIR result folder must record beyond the model's name: the sampling defaults a call left unset
    resolves to, and a digest of the conditioning component's weights. A model rebuilt or re-tuned at the same path
    then gets a fresh folder instead of silently topping up (or reusing) the old model's results."""
    adapter = getattr(pipe, "adapter", None)
    if adapter is None:
        return {}
    digest = hashlib.sha256()
    for name, tensor in sorted(adapter.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return {
        "sampling_defaults": dict(adapter.config.get("sampling_defaults") or {}),
        "adapter_sha256": digest.hexdigest()[:16],
    }


def restore_benchmark(
    bench_dir: Path,
    out_dir: Path,
    method: str,
    pipe=None,
    upscale: int = 4,
    seed: int = 0,
    settings: dict | None = None,
    **pipe_kwargs,
) -> int:
    """
    Write `out_dir/<name>.png` for every LQ image not restored yet; returns how many this process wrote (each
    process of an `accelerate launch` run restores its share).

    `settings` (JSON: the model and every sampling setting) are saved as `restore_settings.json`; a folder restored
    with other settings is refused rather than topped up, so no result folder mixes two configurations. Each image
    gets its own generator seeded with `seed`, so a resumed run restores exactly what an uninterrupted one would.

    On a task benchmark (`fluxir-eval build tasks`) only super-resolution entries are upscaled; an all-in-one
    adapter (one with `task_prompts`) is told each entry's task, any other restores blind.
    """
    import json

    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}; built in: {METHODS} (score any other method's folder directly).")
    record = {"method": method, "upscale": upscale, "seed": seed, **(settings or {})}
    settings_path = Path(out_dir) / SETTINGS_NAME
    if settings_path.exists():
        stored = json.loads(settings_path.read_text())
        if stored != record:
            changed = sorted(k for k in set(stored) | set(record) if stored.get(k) != record.get(k))
            raise ValueError(
                f"{out_dir} was restored with other settings ({', '.join(f'{k}: {stored.get(k)!r} -> {record.get(k)!r}' for k in changed)}); "
                "restore into another folder or delete it."
            )
    state = process_state()
    if state.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(settings_path, json.dumps(record, indent=1) + "\n")
    state.wait_for_everyone()
    written = 0
    tasks = benchmark_tasks(bench_dir)
    knows_tasks = bool(getattr(getattr(pipe, "adapter", None), "config", {}).get("task_prompts"))
    # Under `accelerate launch`, each process restores its share; every image has its own seeded generator, so the
    # folder is the one a single process writes.
    names = shard(benchmark_names(bench_dir), state)
    for name in tqdm(names, desc=f"Restoring with {method} [{state.process_index}]"):
        target = out_dir / f"{name}.png"
        if target.exists():
            continue
        with Image.open(Path(bench_dir) / "lq" / f"{name}.png") as lq:
            lq = lq.convert("RGB")
        task = tasks.get(name)
        factor = upscale if task is None or TASKS[task].resizes else 1
        if method == "bicubic":
            result = lq.resize((lq.width * factor, lq.height * factor), Image.BICUBIC)
        elif method != "fluxir":  # Real-ESRGAN or a spandrel model (`fluxir_hub.evaluation.baselines`)
            result = pipe(lq, outscale=factor)
        else:
            generator = torch.Generator("cpu").manual_seed(seed)
            call = dict(pipe_kwargs)
            if task and knows_tasks:
                call["task"] = task
            elif task:  # a blind adapter still gets the task's sampling settings, as a told one would
                for key in ("color_fix", "restoration_weight"):
                    if call.get(key) is None:
                        call[key] = getattr(TASKS[task], key)
            result = pipe(lq, upscale=factor, generator=generator, **call).images[0]
        atomic_save_png(target, result)
        written += 1
    state.wait_for_everyone()  # the folder is complete when any process returns
    return written


def _tensor(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)[None]


def _fingerprint(*paths: Path) -> str:
    """A digest of the files' bytes: a row is reused only while the images it was computed from are unchanged."""
    digest = hashlib.sha1()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def task_means(bench_dir: Path, csv_path: Path) -> dict[str, dict[str, float]]:
    """Per-task metric means from a method's per-image CSV on a task benchmark (`{}` for other benchmarks)."""
    tasks = benchmark_tasks(bench_dir)
    if not tasks or not csv_path.exists():
        return {}
    grouped: dict[str, list[dict[str, float]]] = {}
    with csv_path.open() as handle:
        for row in csv.DictReader(handle):
            if row["name"] in tasks:
                values = {k: float(v) for k, v in row.items() if k not in ("name", "fingerprint") and v}
                grouped.setdefault(tasks[row["name"]], []).append(values)
    order = [t for t in TASKS if t in grouped]
    return {t: {m: float(np.mean([r[m] for r in grouped[t]])) for m in grouped[t][0]} for t in order}


def score_results(
    bench_dir: Path, results_dir: Path, scorers: dict, csv_path: Path
) -> tuple[dict[str, float | None], list[str]]:
    """
    Score every image of a method on a benchmark; rows already in `csv_path` are reused while the result (and HQ)
    files they were computed from are unchanged.

    Returns:
        `(means, missing)`: per-metric means over all images, or None for every metric when any result is missing
        (a partial average would not be comparable), and the names of the missing results.
    """
    names = benchmark_names(bench_dir)
    has_hq = (Path(bench_dir) / "hq").exists()
    metrics = [m for m in scorers if has_hq or m not in FULL_REFERENCE]
    rows: dict[str, dict[str, float]] = {}
    fingerprints: dict[str, str] = {}
    if csv_path.exists():
        with csv_path.open() as handle:
            for row in csv.DictReader(handle):
                fingerprints[row["name"]] = row.get("fingerprint") or ""
                rows[row["name"]] = {
                    k: float(v) for k, v in row.items() if k not in ("name", "fingerprint") and v not in ("", None)
                }
    missing = [n for n in names if not (results_dir / f"{n}.png").exists()]
    todo = []
    for name in names:
        if name in missing:
            continue
        sources = [results_dir / f"{name}.png"] + ([Path(bench_dir) / "hq" / f"{name}.png"] if has_hq else [])
        current = _fingerprint(*sources)
        if fingerprints.get(name) != current:  # new, or the result/HQ changed since it was scored
            rows.pop(name, None)
            fingerprints[name] = current
        if not all(m in rows.get(name, {}) for m in metrics):
            todo.append(name)
    for name in tqdm(todo, desc=f"Scoring {results_dir.name}"):
        result = _tensor(results_dir / f"{name}.png")
        scores = rows.setdefault(name, {})
        reference = None
        if has_hq:
            reference = _tensor(Path(bench_dir) / "hq" / f"{name}.png")
            if reference.shape != result.shape:
                raise ValueError(
                    f"{results_dir / name}.png is {tuple(result.shape[-2:])[::-1]}, the HQ is "
                    f"{tuple(reference.shape[-2:])[::-1]}: a method must output the HQ size."
                )
        with torch.no_grad():
            for metric, scorer in scorers.items():
                if metric in FULL_REFERENCE:
                    if reference is not None:
                        scores[metric] = float(scorer(result, reference))
                else:
                    scores[metric] = float(scorer(result))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["name", *metrics, "fingerprint"])
        writer.writeheader()
        for name in names:
            if name in rows:
                writer.writerow(
                    {"name": name, **{m: rows[name].get(m, "") for m in metrics}, "fingerprint": fingerprints[name]}
                )
    if missing:
        return {m: None for m in metrics}, missing
    means = {m: float(np.mean([rows[n][m] for n in names])) for m in metrics}
    return {m: (v if math.isfinite(v) else None) for m, v in means.items()}, missing
