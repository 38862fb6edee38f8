"""The FluxIR restoration demo (Gradio), built to run as a Hugging Face Space on ZeroGPU.

UI only: the model work is `fluxir_hub.FluxIRPipeline`. `app.py` at the repository root builds the app once at import
(the Space convention) and launches it. Settings come from environment variables:

| variable | meaning |
|---|---|
| `FLUXIR_BASE_MODEL`, `FLUXIR_BASE_REVISION` | base FLUX.1 pipeline (default `black-forest-labs/FLUX.1-dev`) |
| `FLUXIR_ADAPTER`, `FLUXIR_ADAPTER_REVISION` | the trained FluxIR adapter; unset -> the embedded mini model |
| `FLUXIR_TINY=1` | the tiny *random* test pipeline instead (outputs are noise; for UI tests) |

Without a GPU, an adapter, or Hub access the app runs the embedded mini FluxIR model (a small FLUX-shaped model
trained offline on a CPU, not FLUX.1) and says so in a banner.
"""

from __future__ import annotations

import logging
import math
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import spaces
import torch
from gradio.data_classes import ImageData
from PIL import Image
from pydantic import model_validator

from fluxir_hub.image_io import ImageLoadError, load_image
from fluxir_hub.pipelines.pipeline_fluxir import DEFAULT_NUM_INFERENCE_STEPS, output_size
from fluxir_hub.tasks import TASKS

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).parent / "examples"
MAX_SEED = 2**31 - 1
# A public Space gets bursts: hold this many waiting requests (each sees its place in the queue); beyond it Gradio
# refuses with "busy, please try again" (browser) / "Queue is full! Please try again." (API clients).
QUEUE_SIZE = 32
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_PROMPT_CHARS = 500
COLOR_FIXES = ("wavelet", "adain", "none")
# Result files older than this are deleted when a new one is written (Gradio keeps its own copy for the client).
RESULT_MAX_AGE_S = 15 * 60
# Gradio's own cache (uploads, copies of results): swept every 10 minutes of files older than 30.
GRADIO_CACHE_SWEEP = (600, 1800)


class PayloadError(Exception):
    """A malformed API payload. Not a `ValueError`, so pydantic passes it through instead of wrapping it in its own
    text; the app shows its message (`show_error`)."""


class UploadPayload(ImageData):
    """Gradio's image payload, refusing anything but a file payload with a message a person can act on (Gradio's
    own check answers a number or a string with pydantic's text)."""

    @model_validator(mode="before")
    @classmethod
    def _a_file_payload(cls, value: Any) -> Any:
        if not isinstance(value, (dict, ImageData)):
            raise PayloadError(
                "Upload an image first: the image must be sent as a file (with gradio_client: "
                f"`handle_file(path)`), got {type(value).__name__}."
            )
        return value


@dataclass(frozen=True)
class Limits:
    """What one request may ask for. The sliders show these; the server enforces them (clients can bypass the UI)."""

    upscale: tuple[int, int] = (1, 4)
    steps: tuple[int, int] = (1, 50)
    fidelity: tuple[float, float] = (0.0, 0.3)
    tts_candidates: tuple[int, int] = (2, 8)


LIMITS = Limits()


def launch_settings() -> dict[str, Any]:
    """Keyword arguments for `demo.launch()`: an upload cap, and refusals shown with their message."""
    return {"max_file_size": MAX_UPLOAD_BYTES, "show_error": True}


@dataclass
class DemoModel:
    pipe: Any
    kind: str  # "flux" (FLUX.1 + a trained adapter), "mini" (the embedded mini model) or "tiny" (random, tests)
    banner: str
    max_input_pixels: int
    max_output_pixels: int
    seconds_per_megapixel_step: float  # for the ZeroGPU duration estimate
    default_steps: int = 20
    task_pipes: dict[str, Any] = field(default_factory=dict)  # tasks served by another pipeline (the mini all-in-one)

    @property
    def tiny(self) -> bool:
        return self.kind == "tiny"

    def sampling_defaults(self, task: str = "sr") -> dict:
        """What the adapter serving `task` restores with by default (its `sampling_defaults`; chosen on validation
        data for the mini model), over FLUX.1's 0.05 / wavelet."""
        adapter = getattr(self.pipe_for(task), "adapter", None)
        return {"restoration_weight": 0.05, "color_fix": "wavelet",
                **(getattr(adapter, "config", {}).get("sampling_defaults") or {})}  # fmt: skip

    @property
    def distilled_steps(self) -> int | None:
        """Steps of the adapter's distilled schedule (`fluxir-train --stage distill`), if it has one."""
        sigmas = getattr(getattr(self.pipe, "adapter", None), "config", {}).get("distilled_sigmas")
        return len(sigmas) if sigmas else None

    @property
    def tasks(self) -> list[str]:
        """Restoration tasks on offer: the adapter's `task_prompts` (an all-in-one adapter), else `sr`, and those of
        `task_pipes`, in the order of `TASKS`."""
        prompts = getattr(getattr(self.pipe, "adapter", None), "config", {}).get("task_prompts")
        offered = set(prompts) if prompts else {"sr"}
        return [task for task in TASKS if task in offered or task in self.task_pipes]

    def pipe_for(self, task: str):
        """The pipeline that restores `task`."""
        return self.task_pipes.get(task, self.pipe)

    def steps_for_call(self, steps: int) -> int | None:
        """`num_inference_steps` for a request: `None` (the distilled schedule itself) when the request asks for
        exactly the distilled step count, else the count asked for."""
        return None if steps == self.distilled_steps else steps


def load_model() -> DemoModel:
    """FLUX.1 with the trained adapter when a GPU, an adapter and the weights are available; else the embedded mini
    model (or the tiny random pipeline with `FLUXIR_TINY=1`)."""
    adapter_id = os.environ.get("FLUXIR_ADAPTER")
    reason = None
    if os.environ.get("FLUXIR_TINY") == "1":
        from fluxir_hub.tiny import tiny_pipeline

        banner = (
            "**Test mode:** FLUXIR_TINY=1 is set, so this app runs the *tiny random* pipeline. It exercises the whole "
            "interface, but its outputs are noise, not restorations."
        )
        return DemoModel(tiny_pipeline(), "tiny", banner, 512 * 512, 1024 * 1024, 0.05, default_steps=4)
    if not adapter_id:
        reason = "no FLUXIR_ADAPTER is configured"
    elif not torch.cuda.is_available() and not os.environ.get("SPACES_ZERO_GPU"):
        reason = "no GPU is available"
    if reason is None:
        try:
            from fluxir_hub.pipelines import load_restoration_pipeline

            # any conditioning kind (its config says which); the text box means any prompt: text encoders load
            pipe = load_restoration_pipeline(
                os.environ.get("FLUXIR_BASE_MODEL", "black-forest-labs/FLUX.1-dev"),
                adapter_id,
                prompt=None,
                base_revision=os.environ.get("FLUXIR_BASE_REVISION"),
                adapter_revision=os.environ.get("FLUXIR_ADAPTER_REVISION"),
                dtype=torch.bfloat16,
            )
            pipe.to("cuda")
            pipe.vae.enable_tiling()
            model = DemoModel(pipe, "flux", "", 1024 * 1024, 2048 * 2048, 0.35)
            if model.distilled_steps:  # a few-step student: its own schedule by default
                model.default_steps = model.distilled_steps
                model.banner = f"A few-step FluxIR adapter: {model.distilled_steps} steps by default."
            return model
        except Exception as err:  # any loading failure: serve the mini model and show why in the banner
            print(f"FluxIR demo: could not load {adapter_id}: {err!r}", file=sys.stderr)
            reason = f"the model could not be loaded ({err.__class__.__name__})"
    from fluxir_hub.mini import ALL_IN_ONE_DIR, load_mini_pipeline

    banner = (
        f"**Demo mode:** {reason}, so this app runs the embedded **mini FluxIR** model: a small FLUX-shaped model "
        "trained offline on a CPU from a few dozen photos, *not FLUX.1*. It restores, but expect a small model's "
        "results."
    )
    model = DemoModel(load_mini_pipeline(), "mini", banner, 512 * 512, 1024 * 1024, 0.5)
    model.default_steps = model.sampling_defaults().get("num_inference_steps", model.default_steps)
    if (ALL_IN_ONE_DIR / "config.json").is_file():  # its all-in-one adapter serves the six other tasks
        all_in_one = load_mini_pipeline(task="denoise")
        model.task_pipes = {task: all_in_one for task in all_in_one.adapter.config.task_prompts if task != "sr"}
    return model


def estimate_duration(
    model: DemoModel, width: int, height: int, upscale: float, steps: int, tts_candidates: int
) -> int:
    """Seconds of GPU to ask ZeroGPU for: steps x output megapixels x a per-step cost, TTS included, plus overhead."""
    from fluxir_hub.tts import TTSConfig

    out_w, out_h = output_size(width, height, upscale)
    nfe = TTSConfig(num_candidates=tts_candidates).expected_nfe(steps)  # the search's own cost formula
    return int(min(300, 15 + math.ceil(nfe * out_w * out_h / 1e6 * model.seconds_per_megapixel_step)))


def upload_folder() -> Path:
    """Where Gradio stores uploads: `GRADIO_TEMP_DIR`, or `gradio` in the system temp folder (Gradio's documented
    default)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def uploaded_file(image_input: Any) -> Path:
    """
    The path of a file Gradio received as an upload, from the click payload (a dict with a `path`) or an example's
    plain path. Anything outside Gradio's upload folder is refused with the same message whether or not it exists,
    so the API cannot be used to read or probe server files.
    """
    raw = image_input.get("path") if isinstance(image_input, dict) else image_input
    if not isinstance(raw, (str, os.PathLike)) or not str(raw):
        raise gr.Error("Upload an image first.")
    path = Path(raw).resolve()  # symlinks and '..' resolved before the containment check
    if not path.is_relative_to(upload_folder()) or not path.is_file():
        raise gr.Error("Upload an image first: only files uploaded to this app can be restored.")
    return path


def _plain(number: float) -> str:
    """A limit as people write it: 2147483647, not 2.14748e+09."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _number(name: str, value: Any, low: float, high: float, integer: bool = False) -> float | int:
    """`value` as a finite number in [low, high] (an int when `integer`), else a `gr.Error` that says what is allowed."""
    kind = "a whole number" if integer else "a number"
    bounds = f"from {_plain(low)} to {_plain(high)}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise gr.Error(f"{name} must be {kind} {bounds}, got {value!r}.")
    if integer and value != int(value):
        raise gr.Error(f"{name} must be a whole number {bounds}, got {value!r}.")
    if not low <= value <= high:
        raise gr.Error(f"{name} must be {bounds}, got {_plain(value)}.")
    return int(value) if integer else float(value)


@dataclass(frozen=True)
class RestoreRequest:
    """One request's settings, each checked against [`Limits`] on the server."""

    image_path: Path
    prompt: str
    upscale: int
    steps: int
    seed: int
    randomize_seed: bool
    fidelity: float
    color_fix: str
    use_tts: bool
    tts_candidates: int
    task: str = "sr"

    @classmethod
    def parse(
        cls,
        image_input,
        prompt,
        upscale,
        steps,
        seed,
        randomize_seed,
        fidelity,
        color_fix,
        use_tts,
        tts_candidates,
        task="sr",
        tasks=("sr",),
    ) -> RestoreRequest:
        """Check every value; `tasks` are the ones the loaded adapter can do (the client's choice is not trusted)."""
        if task not in tasks:
            raise gr.Error(f"Task must be one of {', '.join(tasks)} for this model, got {task!r}.")
        if prompt is None:
            prompt = ""
        if not isinstance(prompt, str):
            raise gr.Error(f"The prompt must be text, got {type(prompt).__name__}.")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise gr.Error(f"The prompt has {len(prompt)} characters; at most {MAX_PROMPT_CHARS} are allowed.")
        if color_fix not in COLOR_FIXES:
            raise gr.Error(f"Colour fix must be one of {', '.join(COLOR_FIXES)}, got {color_fix!r}.")
        for name, flag in (("Randomize seed", randomize_seed), ("Test-time scaling", use_tts)):
            if not isinstance(flag, bool):
                raise gr.Error(f"{name} must be true or false, got {flag!r}.")
        return cls(
            image_path=uploaded_file(image_input),
            prompt=prompt,
            upscale=_number("Upscale", upscale, *LIMITS.upscale, integer=True),
            steps=_number("Steps", steps, *LIMITS.steps, integer=True),
            seed=_number("Seed", seed, 0, MAX_SEED, integer=True),
            randomize_seed=randomize_seed,
            fidelity=_number("Fidelity", fidelity, *LIMITS.fidelity),
            color_fix=color_fix,
            use_tts=use_tts,
            tts_candidates=_number("Candidates", tts_candidates, *LIMITS.tts_candidates, integer=True),
            task=task,
        )


def request_duration(model: DemoModel, image_input, upscale, steps, candidates) -> int:
    """GPU seconds for one request; requests that will be refused inside the GPU function ask for the minimum."""
    minimum = estimate_duration(model, 8, 8, 1, 1, 1)
    try:
        with Image.open(uploaded_file(image_input)) as image:
            width, height = image.size
        upscale = _number("Upscale", upscale, *LIMITS.upscale, integer=True)
        steps = _number("Steps", steps, *LIMITS.steps, integer=True)
        candidates = 1 if candidates == 1 else _number("Candidates", candidates, *LIMITS.tts_candidates, integer=True)
    except Exception:
        return minimum
    return estimate_duration(model, width, height, upscale, steps, candidates)


class ResultFiles:
    """
    The full-resolution PNGs offered for download, in one folder per app. Gradio serves its own copy, so files older
    than `max_age_s` are deleted whenever a new one is written: a long-running Space does not fill its disk.
    """

    def __init__(self, max_age_s: float = RESULT_MAX_AGE_S):
        self.max_age_s = max_age_s
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        if self._folder is None:  # made at the first result, not at import
            self._folder = Path(tempfile.mkdtemp(prefix="fluxir-results-"))
        return self._folder

    def save(self, image: Image.Image) -> Path:
        now = time.time()
        for old in self.folder.glob("*.png"):
            try:
                if now - old.stat().st_mtime > self.max_age_s:
                    old.unlink()
            except FileNotFoundError:  # another request removed it first
                continue
        path = self.folder / f"restored-{uuid.uuid4().hex[:12]}.png"
        image.save(path, format="PNG")
        return path


class Restorer:
    """Holds the model; its `restore` method is the app's one GPU function."""

    def __init__(self, model: DemoModel, results: ResultFiles | None = None):
        self.model = model
        self.results = results or ResultFiles()

    def check_input_size(self, width: int, height: int) -> None:
        if width * height > self.model.max_input_pixels:
            side = int(math.sqrt(self.model.max_input_pixels))
            raise gr.Error(
                f"The image is {width}x{height}; this demo accepts up to {self.model.max_input_pixels:,} "
                f"pixels (about {side}x{side}). Crop or downscale it, or run fluxir-restore locally."
            )

    def load_input(self, request: RestoreRequest) -> Image.Image:
        try:  # the size from the header first: a huge image is refused before it is decoded
            with Image.open(request.image_path) as header:
                size = header.size
        except Exception:  # not an image: `load_image` below says so
            size = None
        if size is not None:
            self.check_input_size(*size)
        try:
            image = load_image(request.image_path)
        except ImageLoadError as err:
            raise gr.Error(f"That file is not a usable image: {str(err).split(': ', 1)[-1]}") from err
        self.check_input_size(image.width, image.height)
        out_w, out_h = output_size(image.width, image.height, request.upscale)
        if out_w * out_h > self.model.max_output_pixels:
            raise gr.Error(
                f"x{request.upscale} would make a {out_w}x{out_h} image, above this demo's "
                f"{self.model.max_output_pixels:,} output pixels. Lower the upscale factor or use a smaller image."
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
        task: str = "sr",
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's injection idiom
    ):
        request = RestoreRequest.parse(
            image_input,
            prompt,
            upscale,
            steps,
            seed,
            randomize_seed,
            fidelity,
            color_fix,
            use_tts,
            tts_candidates,
            task,
            self.model.tasks,
        )
        image = self.load_input(request)
        seed = random.randint(0, MAX_SEED) if request.randomize_seed else request.seed
        tts = None
        if request.use_tts:
            from fluxir_hub.tts import IQAReward, TTSConfig

            # Offline metrics for the models that run without the Hub; FLUX.1 uses the paper's learned ones.
            reward = IQAReward(metrics={"piqe": 1.0, "entropy": 1.0}) if self.model.kind != "flux" else None
            tts = TTSConfig(num_candidates=request.tts_candidates, reward=reward)

        def on_step(pipe, step, timestep, kwargs):
            progress((step + 1, request.steps), desc="Restoring")
            return {}

        start = time.perf_counter()
        try:
            result = self.model.pipe_for(request.task)(
                image,
                prompt=request.prompt,
                task=request.task,
                upscale=request.upscale if TASKS[request.task].resizes else 1,  # the other tasks keep the size
                num_inference_steps=self.model.steps_for_call(request.steps),
                restoration_weight=request.fidelity,
                color_fix=request.color_fix,
                tile_size=1024,
                generator=torch.Generator("cpu").manual_seed(seed),
                callback_on_step_end=on_step,
                tts=tts,
            )
        except ValueError as err:  # the pipeline's own input checks: their messages say what to change
            raise gr.Error(str(err)) from err
        except Exception as err:  # never show a traceback or server details; the log keeps them
            logger.exception("restoration failed")
            raise gr.Error(
                f"Restoration failed ({err.__class__.__name__}). Try a smaller image or fewer steps."
            ) from err
        seconds = time.perf_counter() - start
        restored = result.images[0]
        before = image.resize(restored.size, Image.BICUBIC)
        path = self.results.save(restored)
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

    with gr.Blocks(title="FluxIR: real-world image restoration", delete_cache=GRADIO_CACHE_SWEEP) as demo:
        gr.Markdown(
            "# FluxIR: real-world image restoration with FLUX.1\n"
            "Upload a degraded photo; FluxIR restores and upscales it. A prompt can steer the result."
        )
        if model.banner:
            gr.Markdown(model.banner, elem_id="demo-banner")
        with gr.Row():
            with gr.Column():
                image_in = gr.Image(label="Low-quality input", type="filepath", sources=["upload", "clipboard"])
                # This input's payload model (Gradio checks every API payload against it): one that answers a
                # non-file value with a message. Not a subclass: Gradio writes a .pyi beside any component subclass.
                image_in.data_model = UploadPayload
                task = gr.Dropdown(
                    [(TASKS[t].title, t) for t in model.tasks],
                    value="sr",
                    label="Task",
                    interactive=len(model.tasks) > 1,
                    info="This model restores these degradations"
                    if len(model.tasks) > 1
                    else "A super-resolution model",
                )
                # a value of its own, so API clients may leave the prompt out (as every other setting)
                prompt = gr.Textbox(value="", label="Prompt (optional)", placeholder="e.g. a sharp photo of a cat")
                upscale = gr.Slider(*LIMITS.upscale, value=4, step=1, label="Upscale (super-resolution only)")
                steps = gr.Slider(*LIMITS.steps, value=model.default_steps, step=1, label="Steps")
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, label="Seed", minimum=0, maximum=MAX_SEED)
                    randomize = gr.Checkbox(value=False, label="Randomize seed")
                with gr.Accordion("Advanced", open=False):
                    fidelity = gr.Slider(
                        *LIMITS.fidelity,
                        value=model.sampling_defaults()["restoration_weight"],
                        step=0.01,
                        label="Fidelity (restoration sampling weight)",
                    )
                    color_fix = gr.Radio(
                        list(COLOR_FIXES), value=model.sampling_defaults()["color_fix"], label="Colour fix"
                    )
                    use_tts = gr.Checkbox(value=False, label="Test-time scaling (reward-guided search)")
                    candidates = gr.Slider(
                        *LIMITS.tts_candidates, value=4, step=1, label="Candidates per branching step"
                    )
                run = gr.Button("Restore", variant="primary")
            with gr.Column():
                slider = gr.ImageSlider(label="Before / after", type="pil", format="png")  # lossless, as restored
                download = gr.File(label="Full-resolution result (PNG)")
                info = gr.Markdown(label="Run info", elem_id="run-info")
        inputs = [image_in, prompt, upscale, steps, seed, randomize, fidelity, color_fix, use_tts, candidates, task]
        outputs = [slider, download, info, seed]

        # only super-resolution changes the size (the server enforces it too)
        def task_settings(name):  # the task's own defaults (the server still checks whatever comes back)
            spec = TASKS.get(name, TASKS["sr"])
            own = model.sampling_defaults(spec.name)
            weight = own["restoration_weight"] if spec.restoration_weight is None else spec.restoration_weight
            fix = own["color_fix"] if spec.keeps_colors else spec.color_fix
            same_pipe = model.pipe_for(spec.name) is model.pipe
            steps_value = own.get(
                "num_inference_steps", model.default_steps if same_pipe else DEFAULT_NUM_INFERENCE_STEPS
            )
            return (gr.update(value=4 if spec.resizes else 1), gr.update(value=weight), gr.update(value=fix),
                    gr.update(value=steps_value))  # fmt: skip

        task.change(task_settings, task, [upscale, fidelity, color_fix, steps])
        # No preprocessing: Gradio would copy *any* server path named in the payload into its cache before the
        # function runs. `RestoreRequest.parse` reads only files inside the upload folder and checks every value.
        run.click(
            gpu_restore,
            inputs=inputs,
            outputs=outputs,
            api_name="restore",
            concurrency_limit=1,
            preprocess=False,
            show_progress="full",  # the queue position while waiting, then the pipeline's progress
        )
        examples = sorted(EXAMPLES_DIR.glob("*.png"))
        if examples:

            def restore_example(image_path):
                steps = model.default_steps
                own = model.sampling_defaults()
                return gpu_restore(image_path, "", 4, steps, 0, False, own["restoration_weight"], own["color_fix"],
                                   False, 4, "sr")  # fmt: skip

            gr.Examples(  # the image alone: an empty prompt column would show as an empty table column
                examples=[[str(p)] for p in examples],
                inputs=[image_in],
                outputs=outputs,
                fn=restore_example,
                cache_examples=True,
                cache_mode="lazy",
                label="Examples (public-domain photos the mini model never trained on, degraded with FluxGen's seesr preset)",
            )
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    return demo
