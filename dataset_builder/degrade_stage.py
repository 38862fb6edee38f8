"""Stage 4: make the LQ partner of every kept image, with its degradation record beside it.

An LQ is (re)made when it is missing, damaged, or was made with other settings (preset, scale, seed offset, target)
than the build's, so a `--resume` with another preset never leaves a mix behind. With a sharpened target (seesr and
realesrgan by default, as SeeSR and Real-ESRGAN train) the unsharp-masked HQ is stored beside the LQ
(`<id>_target.png`) and exported as the pair's `hq`. A damaged HQ is moved aside and named; the
other images are still degraded, and a rerun of `fluxgen run` regenerates, rescores and reselects it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json

from PIL import Image
from tqdm.auto import tqdm

from fluxir_hub.degradations import degrade, record_task
from fluxir_hub.distributed import process_state, shard

from .config import DegradeConfig
from .io_utils import BuildLayout, atomic_save_png, atomic_write_json, check_image, quarantine, remove_stale_temp_files


def lq_is_current(layout: BuildLayout, seed: int, config: DegradeConfig) -> bool:
    """Whether the LQ of `seed` exists, decodes, and was made with `config`'s settings."""
    params_path = layout.lq_params_path(seed)
    if not params_path.exists() or check_image(layout.lq_path(seed), decode=False) is not None:
        return False
    try:
        params = json.loads(params_path.read_text())
    except ValueError:
        return False
    super_resolution = record_task(params) == "sr"
    sharpened = config.sharpens_target and super_resolution
    expected = {
        "preset": config.preset,
        "scale": config.scale if super_resolution else 1,
        "seed": seed + config.seed_offset,
        "target": "usm" if sharpened else "hq",
    }
    if config.preset == "mixed":  # the record of another mix would have drawn other tasks
        expected["mix"] = config.preset_config.weights
    if any(params.get(key) != value for key, value in expected.items()):
        return False
    return not sharpened or check_image(layout.target_path(seed), decode=False) is None


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # a worker per core: no worker oversubscribes the machine


def _degrade_one(layout: BuildLayout, config: DegradeConfig, device: str, seed: int) -> str | None:
    """Make the LQ of `seed` (and its record and target); returns `None`, or a line naming a damaged HQ."""
    hq_path = layout.image_path(seed)
    try:
        with Image.open(hq_path) as image:
            hq = image.convert("RGB")  # decodes the whole file: damage surfaces here
    except (OSError, SyntaxError, ValueError) as err:
        if hq_path.exists():
            quarantine(hq_path)
        return f"{hq_path} ({err.__class__.__name__}: {err})"
    result = degrade(hq, config.preset_config, config.scale, seed + config.seed_offset, device, config.sharpens_target)
    # Target and record first, image last: an LQ on disk always has what it belongs to.
    if result.params["target"] == "usm":
        atomic_save_png(layout.target_path(seed), result.hq)
    atomic_write_json(layout.lq_params_path(seed), result.params)
    atomic_save_png(layout.lq_path(seed), result.lq)
    return None


def degrade_images(root, config: DegradeConfig, show_progress: bool = True, device: str | None = None) -> int:
    """Degrade every kept image of this process's share whose LQ is not current (on the GPU when there is one);
    returns how many were written.

    Noise is drawn on the CPU either way, so a record replays on any device up to float rounding in the filters.

    Raises:
        ValueError: some kept HQ images are damaged (after all the others are done); the message names them.
    """
    state = process_state()
    device = device or str(state.device)
    layout = BuildLayout(root)
    if not layout.selection_path.exists():
        raise ValueError("No selection.json yet; run `fluxgen select` first.")
    if state.is_main_process:
        remove_stale_temp_files(layout.root / "lq")
    state.wait_for_everyone()
    kept = [int(i) for i in json.loads(layout.selection_path.read_text())["kept"]]
    # Each process its share of the kept list (records are seeded per image: the same LQ on any process).
    pending = [s for s in shard(kept, state) if not lq_is_current(layout, s, config)]
    damaged: list[str] = []
    written = 0
    pooled = config.num_workers > 1 and len(pending) > 1
    work = functools.partial(_degrade_one, layout, config, "cpu" if pooled else device)
    with contextlib.ExitStack() as stack:
        results = map(work, pending)
        if pooled:  # each LQ is seeded by its image: the same bytes whichever worker makes it
            pool = stack.enter_context(
                # the platform's default start method, as torch's DataLoader workers (each set to one thread)
                concurrent.futures.ProcessPoolExecutor(config.num_workers, initializer=_one_thread)
            )
            results = pool.map(work, pending, chunksize=4)
        for problem in tqdm(results, total=len(pending), desc=f"Degrading [{state.process_index}]",
                            disable=not show_progress):  # fmt: skip
            if problem is None:
                written += 1
            else:
                damaged.append(problem)
    if damaged:
        raise ValueError(
            f"{len(damaged)} kept HQ image(s) are damaged and were moved aside (*.corrupt): {'; '.join(damaged[:5])}. "
            f"The other {written} LQ image(s) were written. Rerun `fluxgen run` (or generate, score, select, degrade) "
            "to regenerate them."
        )
    return written
