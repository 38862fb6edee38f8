"""The FluxIR restoration demo (Gradio), built to run as a Hugging Face Space on ZeroGPU.

UI only: the model work is `fluxir_hub.FluxIRPipeline`. `app.py` at the repository root builds the app once at import
(the Space convention) and launches it. Settings come from environment variables:

| variable | meaning |
|---|---|
| `FLUXIR_BASE_MODEL`, `FLUXIR_BASE_REVISION` | base FLUX.1 pipeline (default `black-forest-labs/FLUX.1-dev`) |
| `FLUXIR_ADAPTER`, `FLUXIR_ADAPTER_REVISION` | the trained FluxIR adapter; unset -> tiny demo model |
| `FLUXIR_TINY=1` | force the embedded tiny random model |

Without a GPU, an adapter, or Hub access the app starts on the embedded tiny random pipeline and says so in a banner.
"""

from __future__ import annotations

import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import spaces
import torch
from PIL import Image

from fluxir_hub.image_io import ImageLoadError, load_image
from fluxir_hub.pipelines.pipeline_fluxir import output_size

EXAMPLES_DIR = Path(__file__).parent / "examples"
MAX_SEED = 2**31 - 1
QUEUE_SIZE = 8


@dataclass
class DemoModel:
    pipe: Any
    tiny: bool
    banner: str
    max_input_pixels: int
    max_output_pixels: int
    seconds_per_megapixel_step: float  # for the ZeroGPU duration estimate


def load_model() -> DemoModel:
    """Load the real pipeline when a GPU, an adapter and the weights are available; else the tiny one."""
    adapter_id = os.environ.get("FLUXIR_ADAPTER")
    reason = None
    if os.environ.get("FLUXIR_TINY") == "1":
        reason = "FLUXIR_TINY=1 is set"
    elif not adapter_id:
        reason = "no FLUXIR_ADAPTER is configured"
    elif not torch.cuda.is_available() and not os.environ.get("SPACES_ZERO_GPU"):
        reason = "no GPU is available"
    if reason is None:
        try:
            from fluxir_hub import FluxIRAdapter, FluxIRPipeline

            adapter = FluxIRAdapter.from_pretrained(
                adapter_id, revision=os.environ.get("FLUXIR_ADAPTER_REVISION"), torch_dtype=torch.bfloat16
            )
            pipe = FluxIRPipeline.from_pretrained(
                os.environ.get("FLUXIR_BASE_MODEL", "black-forest-labs/FLUX.1-dev"),
                revision=os.environ.get("FLUXIR_BASE_REVISION"),
                adapter=adapter,
                torch_dtype=torch.bfloat16,
            )
            pipe.to("cuda")
            pipe.vae.enable_tiling()
            return DemoModel(pipe, False, "", 1024 * 1024, 2048 * 2048, 0.35)
        except Exception as err:  # any loading failure: serve the tiny model and show why in the banner
            print(f"FluxIR demo: could not load {adapter_id}: {err!r}", file=sys.stderr)
            reason = f"the model could not be loaded ({err.__class__.__name__})"
    from fluxir_hub.testing import tiny_pipeline

    banner = (
        f"**Demo mode:** {reason}, so this app runs the embedded *tiny random* FluxIR pipeline. It exercises the whole "
        "interface, but its outputs are noise, not restorations."
    )
    return DemoModel(tiny_pipeline(), True, banner, 512 * 512, 1024 * 1024, 0.05)


def estimate_duration(
    model: DemoModel, width: int, height: int, upscale: float, steps: int, tts_candidates: int
) -> int:
    """Seconds of GPU to ask ZeroGPU for: steps x output megapixels x a per-step cost, TTS included, plus overhead."""
    out_w, out_h = output_size(width, height, upscale)
    nfe = steps
    if tts_candidates > 1:
        nfe += max(1, steps // 4) * ((tts_candidates - 1) + 2 * tts_candidates)
    return int(min(300, 15 + math.ceil(nfe * out_w * out_h / 1e6 * model.seconds_per_megapixel_step)))


def upload_path(image_input: str | dict | None) -> str | None:
    """The file path of an upload: Gradio's payload dict (the click event skips preprocessing) or a plain path."""
    return image_input.get("path") if isinstance(image_input, dict) else image_input


def request_duration(model: DemoModel, image_input, upscale: float, steps: int, candidates: int) -> int:
    """GPU seconds for one request; unreadable uploads (refused inside the GPU function) ask for the minimum."""
    try:
        with Image.open(upload_path(image_input)) as image:
            width, height = image.size
    except Exception:
        return estimate_duration(model, 8, 8, 1, 1, 1)
    return estimate_duration(model, width, height, float(upscale), int(steps), int(candidates))


class Restorer:
    """Holds the model; its `restore` method is the app's one GPU function."""

    def __init__(self, model: DemoModel):
        self.model = model

    def validate(self, image_input: str | dict | None, upscale: float) -> Image.Image:
        # The click event skips Gradio's preprocessing (which fails opaquely on non-images): the image arrives as
        # its upload payload, a dict with the file's path; examples pass a plain path.
        image_path = upload_path(image_input)
        if not image_path:
            raise gr.Error("Upload an image first.")
        try:
            image = load_image(image_path)
        except ImageLoadError as err:
            raise gr.Error(f"That file is not a usable image: {str(err).split(': ', 1)[-1]}") from err
        pixels = image.width * image.height
        if pixels > self.model.max_input_pixels:
            side = int(math.sqrt(self.model.max_input_pixels))
            raise gr.Error(
                f"The image is {image.width}x{image.height}; this demo accepts up to {self.model.max_input_pixels:,} "
                f"pixels (about {side}x{side}). Crop or downscale it, or run fluxir-restore locally."
            )
        out_w, out_h = output_size(image.width, image.height, upscale)
        if out_w * out_h > self.model.max_output_pixels:
            raise gr.Error(
                f"x{upscale:g} would make a {out_w}x{out_h} image, above this demo's {self.model.max_output_pixels:,} "
                "output pixels. Lower the upscale factor or use a smaller image."
            )
        if min(image.size) < 8:
            raise gr.Error(f"The image is {image.width}x{image.height}; it needs at least 8 pixels per side.")
        return image

    def restore(
        self,
        image_input: str | dict | None,
        prompt: str,
        upscale: float,
        steps: int,
        seed: int,
        randomize_seed: bool,
        fidelity: float,
        color_fix: str,
        use_tts: bool,
        tts_candidates: int,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's injection idiom
    ):
        image = self.validate(image_input, upscale)
        if randomize_seed:
            seed = random.randint(0, MAX_SEED)
        steps = int(steps)
        tts = None
        if use_tts and int(tts_candidates) > 1:
            from fluxir_hub.tts import IQAReward, TTSConfig

            reward = IQAReward(metrics={"piqe": 1.0, "entropy": 1.0}) if self.model.tiny else None
            tts = TTSConfig(num_candidates=int(tts_candidates), reward=reward)

        def on_step(pipe, step, timestep, kwargs):
            progress((step + 1, steps), desc="Restoring")
            return {}

        start = time.perf_counter()
        result = self.model.pipe(
            image,
            prompt=prompt or "",
            upscale=float(upscale),
            num_inference_steps=steps,
            restoration_weight=float(fidelity),
            color_fix=color_fix,
            tile_size=1024,
            generator=torch.Generator("cpu").manual_seed(int(seed)),
            callback_on_step_end=on_step,
            tts=tts,
        )
        seconds = time.perf_counter() - start
        restored = result.images[0]
        before = image.resize(restored.size, Image.BICUBIC)
        path = Path(tempfile.mkdtemp(prefix="fluxir-")) / "restored.png"
        restored.save(path)
        info = f"{restored.width}x{restored.height} in {seconds:.1f} s · {result.nfe} transformer evaluations"
        if result.tts_rewards:
            info += f" · best reward per branching step: {', '.join(f'{r:.3f}' for r in result.tts_rewards[0])}"
        return (before, restored), str(path), info, seed


def build_demo(model: DemoModel | None = None) -> gr.Blocks:
    """The Blocks app. `model` defaults to [`load_model`]()."""
    model = model or load_model()
    restorer = Restorer(model)

    def duration(
        image_input, prompt, upscale, steps, seed, randomize, fidelity, color_fix, use_tts, candidates, *_, **__
    ):
        # ZeroGPU calls this with the GPU function's own arguments to size the allocation.
        return request_duration(model, image_input, upscale, steps, candidates if use_tts else 1)

    gpu_restore = spaces.GPU(duration=duration)(restorer.restore)

    with gr.Blocks(title="FluxIR: real-world image restoration") as demo:
        gr.Markdown(
            "# FluxIR: real-world image restoration with FLUX.1\n"
            "Upload a degraded photo; FluxIR restores and upscales it. A prompt can steer the result."
        )
        if model.banner:
            gr.Markdown(model.banner, elem_id="demo-banner")
        with gr.Row():
            with gr.Column():
                image_in = gr.Image(label="Low-quality input", type="filepath", sources=["upload", "clipboard"])
                prompt = gr.Textbox(label="Prompt (optional)", placeholder="e.g. a sharp photo of a cat")
                upscale = gr.Slider(1, 4, value=4, step=1, label="Upscale")
                steps = gr.Slider(1, 50, value=4 if model.tiny else 20, step=1, label="Steps")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
                    randomize = gr.Checkbox(value=False, label="Randomize seed")
                with gr.Accordion("Advanced", open=False):
                    fidelity = gr.Slider(
                        0.0, 0.3, value=0.05, step=0.01, label="Fidelity (restoration sampling weight)"
                    )
                    color_fix = gr.Radio(["wavelet", "adain", "none"], value="wavelet", label="Colour fix")
                    use_tts = gr.Checkbox(value=False, label="Test-time scaling (reward-guided search)")
                    candidates = gr.Slider(2, 8, value=4, step=1, label="Candidates per branching step")
                run = gr.Button("Restore", variant="primary")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", type="pil")
                download = gr.File(label="Full-resolution result (PNG)")
                info = gr.Markdown(elem_id="run-info")
        inputs = [image_in, prompt, upscale, steps, seed, randomize, fidelity, color_fix, use_tts, candidates]
        outputs = [slider, download, info, seed]
        run.click(
            gpu_restore, inputs=inputs, outputs=outputs, api_name="restore", concurrency_limit=1, preprocess=False
        )
        examples = sorted(EXAMPLES_DIR.glob("*.png"))
        if examples:

            def restore_example(image_path, prompt_text):
                default_steps = 4 if model.tiny else 20
                return gpu_restore(image_path, prompt_text, 4, default_steps, 0, False, 0.05, "wavelet", False, 4)

            gr.Examples(
                examples=[[str(p), ""] for p in examples],
                inputs=[image_in, prompt],
                outputs=outputs,
                fn=restore_example,
                cache_examples=True,
                cache_mode="lazy",
                label="Examples (public-domain photos, degraded with FluxGen's seesr preset)",
            )
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo
