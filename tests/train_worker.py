"""One training run under `accelerate launch`, for the multi-process tests: `python -m tests.train_worker CONFIG OUT`
trains the `TrainConfig` in the JSON file CONFIG and, on the main process, writes the per-step logs to OUT (with
whether the frozen base ended up sharded)."""

import json
import sys

from torch.distributed.tensor import DTensor

from training.config import TrainConfig
from training.trainer import Trainer

if __name__ == "__main__":
    trainer = Trainer(TrainConfig.from_dict(json.loads(open(sys.argv[1]).read())))
    history = trainer.train()
    if trainer.accelerator.is_main_process:
        sharded = any(isinstance(p, DTensor) for p in trainer.models.transformer.parameters())
        with open(sys.argv[2], "w") as f:
            json.dump({"history": history, "sharded": sharded, "world": trainer.accelerator.num_processes}, f)
