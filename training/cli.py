"""`fluxir-train`: train a FluxIR adapter.

    fluxir-train --config configs/fluxir.yaml
    fluxir-train --dataset your-org/fluxgen-pairs --max_train_steps 20000 --mixed_precision bf16 \
        --gradient_checkpointing true --push_to_hub true --hub_model_id your-org/fluxir-adapter
    accelerate launch --multi_gpu --num_processes 4 -m training.cli --config configs/fluxir.yaml
    fluxir-train --config configs/fluxir.yaml --resume_from_checkpoint latest
    fluxir-train --pretrained_model tiny --hq_folder demo/hq --crop_sizes "[[64, 64]]" --max_train_steps 3

Any key of `training.config.TrainConfig` can be given as `--key value` after (or instead of) `--config`.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import argparse

    from fluxir_hub.cli import add_common_arguments, configure_logging

    from .config import TrainConfig, parse_overrides

    parser = argparse.ArgumentParser(prog="fluxir-train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="YAML or JSON file of TrainConfig keys")
    add_common_arguments(parser)
    args, rest = parser.parse_known_args(argv)
    configure_logging(args.verbose)
    overrides, i = [], 0
    while i < len(rest):
        item = rest[i]
        if not item.startswith("--"):
            print(f"fluxir-train: unexpected argument {item!r}; use --key value.", file=sys.stderr)
            return 2
        if "=" in item:
            overrides.append(item[2:])
            i += 1
        elif i + 1 < len(rest):
            overrides.append(f"{item[2:]}={rest[i + 1]}")
            i += 2
        else:
            print(f"fluxir-train: {item} needs a value.", file=sys.stderr)
            return 2
    try:
        config = TrainConfig.from_file(args.config) if args.config else TrainConfig()
        config = parse_overrides(config, overrides)
        config.validate()
        from .trainer import Trainer

        history = Trainer(config).train()
    except ValueError as err:
        print(f"fluxir-train: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # model/dataset lookups, disk full, permissions
        from fluxir_hub.cli import describe_os_error

        print(f"fluxir-train: {describe_os_error(err)}", file=sys.stderr)
        return 2
    if history:
        print(
            f"Trained {len(history)} step(s) this run; final loss {history[-1]['loss']:.4f}; saved to {config.output_dir}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
