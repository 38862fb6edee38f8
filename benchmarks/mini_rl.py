"""RL trajectory tuning on the mini model (paper 002 §4): the tuned adapter against the adapter it started from and
against the same tuning without exploration.

    python benchmarks/mini_rl.py --work-dir mini-build                  # 200 RL steps from the shipped adapter
    python benchmarks/mini_rl.py --work-dir mini-build --train-steps 5  # smoke run

Both variants tune the shipped adapter with `fluxir-train --stage rl` on the mini FluxGen pairs with the same steps,
seed and losses; the ablation sets `--rl_rollouts 0`, so its only branch is the reference's own ODE path (the
trajectory loss then only holds the policy near the reference) and what remains is the ground-truth and
flow-matching losses. Scores as `mini_ablation.py`: PSNR / SSIM / PIQE on the held-out crops (seesr x4), 20 steps,
pipeline defaults. Settings are fixed here in advance; nothing is tuned on the held-out photos.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a fresh clone
    sys.path.insert(0, str(ROOT))


def tune(build, folder: Path, train_steps: int, rollouts: int, lr: float, loss_form: str = "one-step") -> Path:
    from training.trainer import Trainer

    if not (folder / "diffusion_pytorch_model.safetensors").exists() or (folder / "checkpoint-partial").exists():
        config = build.adapter_config(
            folder, stage="rl", adapter_init=str(build.adapter_dir), rl_rollouts=rollouts, max_train_steps=train_steps,
            rl_loss_form=loss_form,
            learning_rate=lr, lr_scheduler="constant", lr_warmup_steps=0, checkpointing_steps=max(1, train_steps // 4),
        )  # fmt: skip
        history = Trainer(config).train()
        (folder / "rl_history.json").write_text(json.dumps(history) + "\n")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="mini-build", help="the fluxir-build-mini work folder (reused)")
    parser.add_argument("--train-steps", type=int, default=200, help="RL steps per variant")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="the authors' LOL setting")
    parser.add_argument("--rollouts", type=int, default=4)
    parser.add_argument("--output", default=None, help="JSON results (default <work-dir>/rl.json)")
    args = parser.parse_args(argv)

    import copy

    from benchmarks._common import ceiling, evaluate, markdown_table, open_mini_build, report, shipped_pipeline
    from fluxir_hub import FluxIRAdapter

    build = open_mini_build(args.work_dir)
    config, work = build.config, build.work
    start = shipped_pipeline(build)
    bench, seed, steps = build.build_bench(), config.seed, config.eval.num_inference_steps
    variants = {
        f"RL-tuned, {args.rollouts} rollouts": (tune(build, work / f"rl-{args.rollouts}-{args.train_steps}",
                                                     args.train_steps, args.rollouts, args.learning_rate),
                                                "modulated-SDE exploration, best rollout kept"),
        f"RL-tuned, {args.rollouts} rollouts, the authors' rollout losses": (
            tune(build, work / f"rl-{args.rollouts}-{args.train_steps}-rollout", args.train_steps, args.rollouts,
                 args.learning_rate, "rollout"),
            "L_traj and L_GT on the policy's own ODE with gradients (checkpointed)"),
        "ablation: no exploration": (tune(build, work / f"rl-0-{args.train_steps}", args.train_steps, 0,
                                          args.learning_rate), "--rl_rollouts 0: GT and flow-matching losses only"),
    }  # fmt: skip
    out = work / "rl-results"
    results = {"VAE round trip (ceiling)": ceiling(start.vae, bench, out / "vae-round-trip")}
    for name, pipe, note in [("bicubic", None, ""), ("start: shipped adapter", start, "the adapter RL started from")]:
        results[name] = {**evaluate(pipe, bench, out / name.split(":")[0], {"num_inference_steps": steps}, seed),
                         "note": note}  # fmt: skip
        print(f"{name}: {results[name]}", flush=True)
    for name, (folder, note) in variants.items():
        pipe = copy.copy(start)  # same base modules, the tuned adapter
        pipe.register_modules(adapter=FluxIRAdapter.from_pretrained(folder).eval())
        results[name] = {**evaluate(pipe, bench, out / folder.name, {"num_inference_steps": steps}, seed),
                         "note": f"{note}; {args.train_steps} steps, lr {args.learning_rate:g}"}  # fmt: skip
        print(f"{name}: {results[name]}", flush=True)
    table = markdown_table(results, "notes")
    report(table, results, Path(args.output) if args.output else work / "rl.json", args=vars(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
