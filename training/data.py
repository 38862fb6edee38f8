"""Training pairs: a FluxGen dataset (Hub id or folder, optionally streamed) or a folder of HQ images degraded on the
fly with FluxGen's own degradation code.

Every random choice (order, crop size, crop position, prompt dropout, on-the-fly degradation) comes from generators
seeded by `(seed, epoch, micro-batch)`, so the stream of batches is a pure function of the config: a resumed run
skips what was consumed and then sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from fluxir_hub.image_io import IMAGE_EXTENSIONS, find_images, to_rgb

from .config import TrainConfig
from .seeding import numpy_rng

logger = logging.getLogger(__name__)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL -> `(3, H, W)` float in [-1, 1] (the VAE's input range)."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)


@dataclass
class Pair:
    hq: Image.Image
    lq: Image.Image | None  # None: degrade on the fly
    prompt: str
    name: str
    task: str | None = None  # the restoration task the pair was made for (FluxGen's `task` column)


class PairSource:
    """Random access (or a stream) of HQ/LQ pairs from one of the two supported sources."""

    def __init__(self, config: TrainConfig):
        self.config = config
        self.streaming = False
        if config.data.hq_folder is not None:
            self.files = find_images([config.data.hq_folder]).paths
            if not self.files:
                raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in hq_folder {config.data.hq_folder}.")
            self.dataset = None
            self.prompt_column = self.task_column = None
            self.use_task_prompts = self._decide_task_prompts()
            return
        from datasets import Image as ImageFeature
        from datasets import load_dataset

        self.dataset = load_dataset(
            config.data.dataset, split=config.data.dataset_split, streaming=config.data.streaming
        )
        self.streaming = config.data.streaming
        features = self.dataset.features or {}
        missing = [c for c in ("hq", "lq") if not isinstance(features.get(c), ImageFeature)]
        if missing:
            raise ValueError(
                f"Dataset {config.data.dataset} needs image columns 'hq' and 'lq' (a FluxGen dataset); "
                f"{missing} missing or not images. Columns: {sorted(features)}. For plain HQ images use `hq_folder`."
            )
        self.prompt_column = config.data.prompt_column if config.data.prompt_column in features else None
        self.task_column = "task" if "task" in features else None
        self.use_task_prompts = self._decide_task_prompts()

    @property
    def tasks(self) -> list[str] | None:
        """The restoration tasks of the pairs (None: unknown, e.g. a streamed dataset)."""
        if self.dataset is None:
            preset = self.config.data.degradation_config
            return sorted(n for n, w in preset.weights.items() if w > 0) if preset.task == "mixed" else [preset.task]
        if self.task_column is None:
            return ["sr"]  # FluxGen datasets made before tasks hold super-resolution pairs
        if self.streaming:
            return None
        return sorted(set(self.dataset[self.task_column]))

    def _decide_task_prompts(self) -> bool:
        """`task_prompts: auto` turns them on when any pair is not super-resolution (an all-in-one model needs to be
        told the task); a streamed dataset with a task column counts as all-in-one."""
        mode = self.config.data.task_prompts
        if mode != "auto":
            return mode == "on"
        tasks = self.tasks
        return tasks is None or any(t != "sr" for t in tasks)

    @property
    def has_prompts(self) -> bool:
        """Whether any pair has a caption of its own (a streamed dataset is assumed to). The empty prompt and the task
        prompts are cached in the adapter, so training on them alone needs no text encoder after setup."""
        if self.dataset is None or self.prompt_column is None:
            return False
        if self.streaming:
            return True
        return any(self.dataset[self.prompt_column])

    def pair_prompt(self, pair: Pair) -> str:
        """The text a pair trains with: its own prompt, after which its task's fixed prompt when task prompts are on."""
        if not self.use_task_prompts:
            return pair.prompt
        from fluxir_hub.degradations import task_prompt

        return task_prompt(pair.task or "sr", pair.prompt)

    def __len__(self) -> int:
        if self.dataset is None:
            return len(self.files)
        if self.streaming:
            raise TypeError("A streamed dataset has no length.")
        return len(self.dataset)

    def _pair(self, row_or_path) -> Pair:
        if self.dataset is None:
            with Image.open(row_or_path) as image:
                image.load()
                return Pair(to_rgb(image), None, "", row_or_path.name)
        prompt = row_or_path.get(self.prompt_column) or "" if self.prompt_column else ""
        name = str(row_or_path.get("id", "?"))
        task = row_or_path.get(self.task_column) if self.task_column else "sr"
        return Pair(to_rgb(row_or_path["hq"]), to_rgb(row_or_path["lq"]), prompt, name, task)

    def describe(self, index: int) -> str:
        return str(self.files[index]) if self.dataset is None else f"row {index} of {self.config.data.dataset}"

    def get(self, index: int) -> Pair:
        return self._pair(self.files[index] if self.dataset is None else self.dataset[int(index)])

    def stream(self, seed: int, epoch: int, rank: int, world: int) -> Iterator[Pair]:
        from datasets.distributed import split_dataset_by_node

        shuffled = self.dataset.shuffle(seed=seed + epoch, buffer_size=self.config.data.dataloader_shuffle_buffer)
        for row in split_dataset_by_node(shuffled, rank=rank, world_size=world):
            try:
                yield self._pair(row)
            except (OSError, SyntaxError, ValueError) as err:
                logger.warning("Skipping streamed row %s: %s", row.get("id", "?"), err)


def crop_pair(pair: Pair, size: tuple[int, int], rng: np.random.Generator, config: TrainConfig, degrade_seed: int):
    """Aligned crop of `size = (w, h)` (random position, or centred with `crop_mode: center`); the LQ crop is
    degraded on the fly when the source has none, then resized to the crop size (as the pipeline does). Returns
    `(hq, lq)` tensors in [-1, 1]. Sets `pair.task` when the degradation is made here.

    Super-resolution pairs have an LQ of HQ / `config.data.scale`; the other tasks' LQs have the HQ's size."""
    width, height = size
    scale = config.data.scale
    if pair.hq.width < width or pair.hq.height < height:
        raise ValueError(
            f"Image {pair.name} is {pair.hq.width}x{pair.hq.height}, smaller than the crop {width}x{height}; "
            "use smaller `crop_sizes` or remove small images."
        )
    if config.data.crop_mode == "center":  # aligned to the LQ grid, as close to the centre as it allows
        left = (pair.hq.width - width) // 2 // scale * scale
        top = (pair.hq.height - height) // 2 // scale * scale
    else:
        left = int(rng.integers(0, (pair.hq.width - width) // scale + 1)) * scale
        top = int(rng.integers(0, (pair.hq.height - height) // scale + 1)) * scale
    hq = pair.hq.crop((left, top, left + width, top + height))
    if pair.lq is None:
        from fluxir_hub.degradations import degrade

        # the preset's target: the unsharp-masked crop for seesr/realesrgan, as FluxGen stores it
        result = degrade(hq, preset=config.data.degradation_config, scale=scale, seed=degrade_seed)
        hq, lq, pair.task = result.hq, result.lq, result.task
    else:
        expected = (pair.hq.width // scale, pair.hq.height // scale)
        if pair.lq.size == pair.hq.size:  # a same-size task (deblurring, denoising, ...)
            scale = 1
        elif pair.lq.size != expected:
            raise ValueError(
                f"Pair {pair.name}: LQ is {pair.lq.size}, expected {expected} (HQ / {scale}) or the HQ's size."
            )
        lq = pair.lq.crop((left // scale, top // scale, (left + width) // scale, (top + height) // scale))
    lq = lq.resize((width, height), Image.BICUBIC)
    return to_tensor(hq), to_tensor(lq)


class BadPairs:
    """Pairs that cannot be used (unreadable, truncated, smaller than the crop): each is warned about once and
    replaced, so one damaged file never stops a long run."""

    def __init__(self, source: PairSource):
        self.source = source
        self.bad: dict[int, str] = {}

    def crop(self, index: int, size, rng: np.random.Generator, config: TrainConfig, degrade_seed: int):
        """`(hq, lq, prompt)` of item `index` (see `crop_pair`), or of the next usable item after it (a deterministic
        choice, so a resumed run makes the same substitution). Raises `ValueError` when no item is usable."""
        n = len(self.source)
        for offset in range(n):
            candidate = (index + offset) % n
            if candidate in self.bad:
                continue
            try:
                pair = self.source.get(candidate)
                hq, lq = crop_pair(pair, size, rng, config, degrade_seed)
                return hq, lq, self.source.pair_prompt(pair)
            except (OSError, SyntaxError, ValueError) as err:
                self.bad[candidate] = str(err)
                logger.warning("Skipping %s: %s", self.source.describe(candidate), err)
        raise ValueError(f"None of the {n} training pairs is usable; first problem: {next(iter(self.bad.values()))}")


def iterate_batches(
    config: TrainConfig,
    source: PairSource,
    rank: int = 0,
    world: int = 1,
    skip: int = 0,
    worker: int = 0,
    workers: int = 1,
) -> Iterator[dict]:
    """
    Endless stream of micro-batches for process `rank` of `world`, skipping the first `skip` (resume).

    Every batch shares one crop size (bucketing). Yields `{"hq": (B, 3, H, W), "lq": (B, 3, H, W), "prompts": [..]}`.
    A damaged or too-small pair is logged once and replaced by the next usable one. With `workers > 1` (DataLoader
    workers), this one builds only every `workers`-th batch from its index `worker`: taken in turn, the workers' batches
    are the single stream's, in order.
    """
    batch_size = config.optim.train_batch_size
    micro = 0
    epoch = 0
    bad_pairs = None if source.streaming else BadPairs(source)
    while True:
        if source.streaming:
            items = source.stream(config.optim.seed, epoch, rank, world)
        else:
            order = numpy_rng(config.optim.seed, "order", epoch).permutation(len(source))[rank::world]
            if len(order) < batch_size:
                raise ValueError(
                    f"The dataset has {len(source)} pairs; too few for {world} process(es) x batch {batch_size}."
                )
            items = iter(order[: len(order) - len(order) % batch_size])
        while True:
            chunk = [next(items, None) for _ in range(batch_size)]
            if chunk[-1] is None:
                break
            if micro < skip or (micro - skip) % workers != worker:  # resumed past, or another worker's: no loading
                micro += 1
                continue
            rng = numpy_rng(config.optim.seed, "batch", rank, micro)
            size = config.data.crop_pairs[int(rng.integers(len(config.data.crop_pairs)))]
            hqs, lqs, prompts = [], [], []
            for j, item in enumerate(chunk):
                degrade_seed = int(numpy_rng(config.optim.seed, "deg", rank, micro, j).integers(2**31))
                if isinstance(item, Pair):  # streamed rows arrive decoded; damaged ones are dropped in `stream`
                    hq, lq, prompt = (*crop_pair(item, size, rng, config, degrade_seed), item.prompt)
                else:
                    hq, lq, prompt = bad_pairs.crop(int(item), size, rng, config, degrade_seed)
                hqs.append(hq)
                lqs.append(lq)
                prompts.append("" if rng.uniform() < config.data.prompt_drop_rate else prompt)
            micro += 1
            yield {"hq": torch.stack(hqs), "lq": torch.stack(lqs), "prompts": prompts}
        epoch += 1


class TrainingBatches(torch.utils.data.IterableDataset):
    """[`iterate_batches`] as a `DataLoader` dataset: each worker builds (loads, crops, degrades) its turn of batches."""

    def __init__(self, config: TrainConfig, source: PairSource, rank: int, world: int, skip: int):
        super().__init__()
        self.args = (config, source, rank, world, skip)

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return iterate_batches(*self.args, worker=worker, workers=workers)


def training_batches(config: TrainConfig, source: PairSource, rank: int = 0, world: int = 1, skip: int = 0):
    """
    The training stream of process `rank`: in this process, or with `config.data.dataloader_num_workers` DataLoader
    workers loading and degrading the next batches meanwhile. A `DataLoader` takes workers' batches in turn, so the
    stream, and the training, is the same for any number of workers.
    """
    if not config.data.dataloader_num_workers:
        return iterate_batches(config, source, rank, world, skip)
    loader = torch.utils.data.DataLoader(
        TrainingBatches(config, source, rank, world, skip),
        batch_size=None,
        num_workers=config.data.dataloader_num_workers,
        persistent_workers=True,
    )
    return iter(loader)
