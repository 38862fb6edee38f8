"""`fluxir-train`: train a FluxIR adapter.

    fluxir-train --config configs/fluxir_paper.yaml
    fluxir-train --dataset your-org/fluxgen-pairs --max_train_steps 20000 --push_to_hub true \
        --hub_model_id your-org/fluxir-adapter
    accelerate launch --multi_gpu --num_processes 4 -m training.cli --config configs/fluxir_paper.yaml
    fluxir-train --config configs/fluxir_paper.yaml --resume_from_checkpoint latest
    fluxir-train --pretrained_model tiny --hq_folder photos/ --crop_sizes 64x64 --max_train_steps 3 \
        --mixed_precision no --gradient_checkpointing false

Every field of `training.config.TrainConfig` is a typed option (see `--help`); a `--config` file (YAML or JSON) sets
defaults that options given on the command line override.
"""

from __future__ import annotations

import sys


def build_parser():
    """transformers' `HfArgumentParser` over `TrainConfig`: one typed option per field, with its help and default."""
    from transformers import HfArgumentParser

    from fluxir_hub.cli import add_common_arguments

    from .config import SECTIONS

    # One typed section per concern (training.config), flat option names. No abbreviations: a typo such as
    # --learning_rat must be refused, not taken for --learning_rate.
    parser = HfArgumentParser(
        [*SECTIONS.values(), legacy_option_flags()],
        prog="fluxir-train",
        description=__doc__.splitlines()[0],
        allow_abbrev=False,
    )
    parser.add_argument("--config", help="YAML or JSON file of TrainConfig keys (options override it)")
    add_common_arguments(parser)
    parser.epilog = registered_choices()
    return parser


def legacy_option_flags() -> type:
    """The old flat option flags (`--rank`, ...; `training.config.LEGACY_OPTION_FLAGS`) as a section of their own
    whose unset value is None, so only a flag given on the command line reaches the configuration."""
    from dataclasses import field, make_dataclass

    from .config import LEGACY_OPTION_FLAGS

    return make_dataclass(
        "LegacyOptionFlags",
        [
            (flag, int | None, field(default=None, metadata={"help": f"= --conditioning_options \"{{{option}: N}}\" "
                                                                      f"with --conditioning {' or '.join(names)}"}))
            for flag, (names, option, _) in LEGACY_OPTION_FLAGS.items()
        ],
    )  # fmt: skip


def registered_choices() -> str:
    """The `--stage` and `--conditioning` values registered now (a stage or kind added by a plugin included)."""
    from fluxir_hub.models import conditioning_names

    from .stages import training_stages

    stages = "; ".join(f"{name} ({stage.help})" for name, stage in training_stages().items())
    kinds = "; ".join(
        f"{name} ({cls.description}{''.join(f', {k}={v}' for k, v in fixed.items())}{_option_help(cls.options)})"
        for name, (cls, fixed) in conditioning_names().items()
    )
    return f"--stage: {stages}. --conditioning: {kinds}."


def _option_help(options: type) -> str:
    from dataclasses import fields

    listed = ", ".join(f"{f.name}={f.default} ({f.metadata.get('help', '')})" for f in fields(options))
    return f"; conditioning_options: {listed}" if listed else ""


def parse_config(argv: list[str] | None):
    """`(TrainConfig, verbosity)` from the command line; file values become defaults the options override."""
    import argparse
    from dataclasses import asdict

    from .config import TrainConfig

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    parser = build_parser()
    if known.config:
        file_config = TrainConfig.from_file(known.config)  # refuses unknown keys, names them
        parser.set_defaults(**file_config.to_dict())
    *sections, legacy, extra = parser.parse_args_into_dataclasses(args=argv)
    settings = {key: value for section in sections for key, value in asdict(section).items()}
    settings.update({flag: value for flag, value in asdict(legacy).items() if value is not None})
    return TrainConfig(**settings), extra.verbose


def main(argv: list[str] | None = None) -> int:
    from fluxir_hub.cli import configure_logging, report_failure

    from .hub import HubPushError

    try:
        config, verbose = parse_config(argv)
    except (ValueError, FileNotFoundError) as err:
        print(f"fluxir-train: {err}", file=sys.stderr)
        return 2
    except SystemExit as stop:  # argparse has printed the usage and what is wrong (or --help / --version)
        return stop.code if isinstance(stop.code, int) else 2
    configure_logging(verbose)
    output_dir = config.checkpoints.output_dir
    try:
        config.validate()
        from .trainer import Trainer

        history = Trainer(config).train()
    except HubPushError as err:
        print(
            f"fluxir-train: training finished and the adapter is saved in {output_dir}, but {err}. Log in with "
            "`hf auth login` (a token with write access), check the repo id, then upload the folder with `hf upload`.",
            file=sys.stderr,
        )
        return 1
    except (ValueError, OSError) as err:  # bad input, model/dataset lookups, disk full, permissions
        return report_failure("fluxir-train", err)
    if history:
        print(f"Trained {len(history)} step(s) this run; final loss {history[-1]['loss']:.4f}; saved to {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
