"""The mini FluxIR model: a small FLUX-shaped stack trained on two CPU cores and shipped inside the package.

It is the paper's whole "acquire then adapt" loop in miniature (a VAE and a base generator trained on photos, FluxGen
pairs made with that base, a FluxIR adapter trained on them; see `fluxir-build-mini`), so the project restores real
photos out of the box where FLUX.1 is out of reach (no GPU, no Hub), and every algorithm can be measured. It is not
FLUX.1: expect a small model's restorations.

```py
from fluxir_hub.mini import load_mini_pipeline

pipe = load_mini_pipeline()  # offline, CPU
restored = pipe(lq_image, upscale=4).images[0]
pipe = load_mini_pipeline(task="denoise")  # the all-in-one adapter (paper 002's seven tasks)
restored = pipe(noisy_image, task="denoise").images[0]
```
"""

from __future__ import annotations

from pathlib import Path

MINI_DIR = Path(__file__).parent / "weights"
ALL_IN_ONE_DIR = MINI_DIR / "all_in_one"  # the all-in-one adapter, shipped beside the pipeline's SR adapter
MINI_DESCRIPTION = "the embedded mini FluxIR model (a small FLUX-shaped model trained offline on a CPU, not FLUX.1)"


def has_mini_weights(folder: str | Path = MINI_DIR) -> bool:
    return (Path(folder) / "model_index.json").is_file()


def load_mini_pipeline(
    folder: str | Path = MINI_DIR, device: str | None = None, task: str | None = None, trust_remote_code: bool = False
):
    """
    Load the shipped mini [`FluxIRPipeline`] (every component, the adapter included) from `folder`, never touching
    the network. On `device` (default: CUDA when available, else CPU), float32, progress bar off.

    With a `task` other than `"sr"`, the pipeline carries the all-in-one adapter shipped beside the SR one (in
    `folder/all_in_one`), which restores all seven tasks with their cached prompts. A `folder` carrying code this
    package did not write loads only with `trust_remote_code=True`.
    """
    import torch

    from ..pipelines.pipeline_fluxir import FluxIRPipeline

    folder = Path(folder)
    if not has_mini_weights(folder):
        raise FileNotFoundError(
            f"No mini model in {folder}. Rebuild it with `fluxir-build-mini` (about an hour on two CPU cores), or "
            "reinstall the package, which ships it."
        )
    consent = {"trust_remote_code": True} if trust_remote_code else {}  # else: only our own module files load
    pipe = FluxIRPipeline.from_pretrained(folder, dtype=torch.float32, local_files_only=True, **consent)
    if task not in (None, "sr"):
        all_in_one = folder / ALL_IN_ONE_DIR.name
        if not (all_in_one / "config.json").is_file():
            raise FileNotFoundError(f"No all-in-one adapter in {all_in_one}: this mini model restores `sr` only.")
        pipe.load_conditioning(all_in_one, dtype=torch.float32, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
