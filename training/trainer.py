"""The FluxIR adapter training loop (paper 001 §3.3, §4.1), on accelerate.

Frozen: the FLUX transformer (except optional LoRA layers), the VAE and the text encoders. Trained: the adapter.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration
from tqdm.auto import tqdm

from fluxir_hub import FluxIRPipeline
from fluxir_hub.latents import image_ids, pack_latents
from fluxir_hub.models.adapter_dra import DRA_LORA_TARGETS
from fluxir_hub.pipelines.pipeline_fluxir import LORA_WEIGHTS_NAME

from .checkpoint import (
    load_ema,
    load_state,
    prune_checkpoints,
    publish_checkpoint,
    resolve_resume,
    save_state,
    staging_folder,
    staging_path,
)
from .config import CONFIG_NAME, ModelConfig, TrainConfig
from .data import PairSource, training_batches
from .losses import sample_timesteps
from .model import ControlledTransformer, training_attention_backends
from .objectives import AdapterObjective, LatentBatch
from .seeding import torch_generator
from .sharding import shard_frozen_base
from .stages import TrainingStage, get_stage

logger = logging.getLogger(__name__)

LORA_TARGETS = list(DRA_LORA_TARGETS)  # the base model's attention projections (the diffusion adapter)


@dataclass
class Models:
    scheduler: Any
    vae: Any
    transformer: Any
    text_encoder: Any
    tokenizer: Any
    text_encoder_2: Any
    tokenizer_2: Any
    max_sequence_length: int


def conditioning_class(conditioning: str) -> type:
    """The component class registered under `--conditioning` (see `fluxir_hub.models.conditioning_names`)."""
    from fluxir_hub.models import conditioning_names

    return conditioning_names()[conditioning][0]


def new_conditioning(model: ModelConfig, transformer, max_sequence_length: int):
    """A fresh conditioning component of `model.conditioning` for `transformer`, built with its options
    ([`ModelConfig.component_options`])."""
    return conditioning_class(model.conditioning).from_transformer(
        transformer, max_sequence_length=max_sequence_length, **model.component_options()
    )


def load_models(config: TrainConfig, weight_dtype: torch.dtype) -> Models:
    """Base FLUX components from the Hub/folder, or the embedded random ones: `"tiny"`, or `"tiny-mid"` (wider)."""
    if config.model.pretrained_model in ("tiny", "tiny-mid"):
        from fluxir_hub.tiny import T5_MAX_LENGTH, tiny_components

        size = "mid" if config.model.pretrained_model == "tiny-mid" else "tiny"
        return Models(**tiny_components(size=size, seed=config.optim.seed), max_sequence_length=T5_MAX_LENGTH)
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

    source, rev = config.model.pretrained_model, config.model.revision
    tokenizer_2 = T5TokenizerFast.from_pretrained(source, subfolder="tokenizer_2", revision=rev)
    return Models(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(source, subfolder="scheduler", revision=rev),
        vae=AutoencoderKL.from_pretrained(source, subfolder="vae", revision=rev, dtype=weight_dtype),
        transformer=FluxTransformer2DModel.from_pretrained(
            source, subfolder="transformer", revision=rev, dtype=weight_dtype
        ),
        text_encoder=CLIPTextModel.from_pretrained(source, subfolder="text_encoder", revision=rev, dtype=weight_dtype),
        tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", revision=rev),
        text_encoder_2=T5EncoderModel.from_pretrained(
            source, subfolder="text_encoder_2", revision=rev, dtype=weight_dtype
        ),
        tokenizer_2=tokenizer_2,
        max_sequence_length=text_length(tokenizer_2),
    )


def text_length(tokenizer_2) -> int:
    """T5 tokens per prompt: FLUX.1's 512, or the tokenizer's own context when it is shorter (small models)."""
    return min(512, tokenizer_2.model_max_length)


class Trainer:
    def __init__(self, config: TrainConfig):
        config.validate()
        self.config = config
        self.stage: TrainingStage | None = None  # what `config.run.stage` names, set up by `setup`
        self.output_dir = Path(config.checkpoints.output_dir)
        self.accelerator = Accelerator(
            gradient_accumulation_steps=config.optim.gradient_accumulation_steps,
            mixed_precision=config.optim.mixed_precision,
            log_with=None if config.validation.report_to == "none" else config.validation.report_to,
            project_config=ProjectConfiguration(
                project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")
            ),
            cpu=not torch.cuda.is_available(),
        )
        # the frozen base split over the processes (FSDP2); with one process there is nothing to split
        self.sharded = config.optim.shard_base and self.accelerator.num_processes > 1
        self.weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            config.optim.mixed_precision, torch.float32
        )
        self.validation_metrics: dict | None = None  # pyiqa models, built at the first validation
        self.validation_inputs: list | None = None
        # Checkpoints to resume from, newest first: a damaged one is skipped for the one before it.
        self.resume_candidates = resolve_resume(self.output_dir, config.checkpoints.resume_from_checkpoint)
        for candidate in self.resume_candidates:
            try:
                stored = TrainConfig.from_file(candidate / CONFIG_NAME)
            except (OSError, ValueError):
                continue  # unreadable: the load below falls back past it
            differences = stored.differences(config)
            if differences:
                raise ValueError(
                    f"Checkpoint {candidate} was trained with different settings: {'; '.join(differences)}. "
                    "Resume with the same settings or start a new output_dir."
                )
            break

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Load the models, the component, the optimiser and the stage; resume when asked."""
        config, accelerator = self.config, self.accelerator
        self.source = PairSource(config)
        self.models = load_models(config, self.weight_dtype)
        adapter = self.prepare_component()
        model = ControlledTransformer(self.models.transformer, adapter)
        if self.sharded:
            shard_frozen_base(model, accelerator.device, accelerator.num_processes)
        optimizer, lr_scheduler = self.make_optimizer(model)
        self.model, self.optimizer, self.lr_scheduler = accelerator.prepare(model, optimizer, lr_scheduler)
        # `save_state` / `load_state` write and read the adapter (not the prepared module, which holds the base)
        accelerator.register_save_state_pre_hook(self._save_state_hook)
        accelerator.register_load_state_pre_hook(self._load_state_hook)
        self.adapter = adapter
        self.ema = None
        if config.checkpoints.use_ema:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(
                [p for p in adapter.parameters() if p.requires_grad], decay=config.checkpoints.ema_decay
            )
        self.stage = self.make_stage()
        self.global_step = 0
        self.resume_checkpoint()
        self.stage.prepare(self)
        if self.ema is not None and not self.resumed:
            self.ema.to(accelerator.device)
        if accelerator.is_main_process and config.validation.report_to != "none":
            accelerator.init_trackers("fluxir-train", config={k: str(v) for k, v in config.to_dict().items()})

    def prepare_component(self):
        """The conditioning component (new, or `adapter_init`) on the frozen base, its prompts cached, the optional
        LoRA diffusion adapter added, ready to train."""
        config, models, device = self.config, self.models, self.accelerator.device
        torch.manual_seed(config.optim.seed)  # fresh adapter layers are identical on every process
        if config.model.adapter_init:
            adapter = conditioning_class(config.model.conditioning).from_pretrained(config.model.adapter_init)
            adapter.check_compatible(models.transformer)
        else:
            adapter = new_conditioning(config.model, models.transformer, models.max_sequence_length)
        for frozen in (models.transformer, models.vae, models.text_encoder, models.text_encoder_2):
            frozen.requires_grad_(False)
        for frozen in (models.vae, models.transformer):
            if not (self.sharded and frozen is models.transformer):  # a sharded base moves block by block
                frozen.to(device)
            if frozen.dtype != self.weight_dtype:  # frozen base in reduced precision under mixed precision
                frozen.to(dtype=self.weight_dtype)
        adapter.to(device)
        if self.source.use_task_prompts:  # an all-in-one adapter: the pipeline's `task=` needs the prompts it saw
            from fluxir_hub.degradations import TASKS

            tasks = self.source.tasks or list(TASKS)
            adapter.set_task_prompts({t: TASKS[t].prompt for t in tasks if t in TASKS})

        # The empty prompt's and the task prompts' embeddings: computed once and stored in the adapter (so they ship
        # with it). The text encoders stay only when the data has captions of its own.
        self.pipe = FluxIRPipeline(
            scheduler=models.scheduler,
            vae=models.vae,
            text_encoder=models.text_encoder.to(device),
            tokenizer=models.tokenizer,
            text_encoder_2=models.text_encoder_2.to(device),
            tokenizer_2=models.tokenizer_2,
            transformer=models.transformer,
            adapter=adapter,
        )
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.cache_prompt_embeds(models.max_sequence_length)
        if not self.source.has_prompts:
            self.pipe.text_encoder = self.pipe.text_encoder_2 = None
            models.text_encoder = models.text_encoder_2 = None
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

        self.uses_lora = config.model.use_lora  # the diffusion adapter (a component's own LoRA, if any, lives in it)
        if config.model.use_lora:
            from peft import LoraConfig

            lora = LoraConfig(
                r=config.model.lora_rank,
                lora_alpha=config.model.lora_rank,
                init_lora_weights="gaussian",
                target_modules=LORA_TARGETS,
            )
            models.transformer.add_adapter(lora)
            for param in models.transformer.parameters():
                if param.requires_grad:
                    param.data = param.data.float()  # trainable LoRA weights in full precision
        adapter.train()
        self.frozen = adapter.freeze_unreachable_parameters()
        if config.optim.gradient_checkpointing:
            models.transformer.enable_gradient_checkpointing()
            if adapter._supports_gradient_checkpointing:
                adapter.enable_gradient_checkpointing()
        return adapter

    def make_optimizer(self, model: torch.nn.Module):
        """AdamW (or bitsandbytes' 8-bit AdamW) over the trainable parameters, and the learning-rate schedule."""
        config = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        if config.optim.use_8bit_adam:
            try:
                import bitsandbytes as bnb
            except ImportError as err:
                raise ValueError("`use_8bit_adam` needs bitsandbytes: `pip install bitsandbytes`.") from err
            optimizer_cls = bnb.optim.AdamW8bit
        else:
            optimizer_cls = torch.optim.AdamW
        optimizer = optimizer_cls(
            params,
            lr=config.optim.learning_rate,
            betas=(config.optim.adam_beta1, config.optim.adam_beta2),
            weight_decay=config.optim.adam_weight_decay,
            eps=config.optim.adam_epsilon,
        )
        from diffusers.optimization import get_scheduler

        # accelerate steps a prepared scheduler once per process per optimizer step: scale the schedule to match
        world = self.accelerator.num_processes
        lr_scheduler = get_scheduler(
            config.optim.lr_scheduler,
            optimizer,
            num_warmup_steps=config.optim.lr_warmup_steps * world,
            num_training_steps=config.optim.max_train_steps * world,
        )
        return optimizer, lr_scheduler

    def make_stage(self) -> TrainingStage:
        """The registered stage `config.run.stage` names (`training.stages`), on paper 001's objective as its base
        term."""
        stage = get_stage(self.config.run.stage)
        base = AdapterObjective(
            self.model,
            self.decode,
            self.config.objective,
            self.weight_dtype,
            self.accelerator.autocast,
            pixel_loss_on=stage.pixel_loss,
        )
        return stage.from_trainer(self, base)

    # ------------------------------------------------------------------ loss
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        vae = self.models.vae
        latents = vae.encode(images.to(self.accelerator.device, vae.dtype)).latent_dist.mode()
        return ((latents - vae.config.shift_factor) * vae.config.scaling_factor).float()

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        vae = self.models.vae
        latents = latents / vae.config.scaling_factor + vae.config.shift_factor
        return vae.decode(latents.to(vae.dtype), return_dict=False)[0]

    def latent_batch(self, batch: dict, generator: torch.Generator) -> LatentBatch:
        """Encode a data batch once for the stage: latents, conditioning, flow times (paper 001 Eq. 5-6) and noise."""
        config, device, dtype = self.config, self.accelerator.device, self.weight_dtype
        with torch.no_grad():
            z0, z_lq = self.encode(batch["hq"]), self.encode(batch["lq"])
            prompt_embeds, pooled, txt_ids = self.pipe.encode_prompt(
                batch["prompts"], device=device, max_sequence_length=self.models.max_sequence_length
            )
        b, _, h, w = z0.shape
        t = sample_timesteps(b, config.objective.timestep_eps, generator).to(device)
        z1 = torch.randn(z0.shape, generator=generator).to(device)
        return LatentBatch(
            z0=z0,
            z1=z1,
            lq=pack_latents(z_lq).to(dtype),
            embeds=prompt_embeds.to(dtype),
            pooled=pooled.to(dtype),
            img_ids=image_ids(h // 2, w // 2, device=device),
            txt_ids=txt_ids,
            guidance=torch.full((b,), config.objective.guidance_scale, device=device),
            t=t,
            hq_pixels=batch["hq"].to(device),
            generator=generator,
        )

    def compute_loss(self, batch: dict, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        """The stage's loss (and its logged parts) on one data batch."""
        return self.stage.loss(self.latent_batch(batch, generator))

    # ------------------------------------------------------------------ loop
    def train(self) -> list[dict[str, float]]:
        """Run to `max_train_steps`; returns the per-step logs of this process."""
        self.setup()
        config, accelerator = self.config, self.accelerator
        rank, world = accelerator.process_index, accelerator.num_processes
        skip = self.global_step * config.optim.gradient_accumulation_steps
        batches = training_batches(config, self.source, rank, world, skip=skip)
        history: list[dict[str, float]] = []
        micro = skip
        bar = tqdm(
            total=config.optim.max_train_steps,
            initial=self.global_step,
            desc="Training",
            disable=not accelerator.is_local_main_process,
        )
        step_logs: dict[str, float] = {}
        while self.global_step < config.optim.max_train_steps:
            batch = next(batches)
            generator = torch_generator(config.optim.seed, "noise", rank, micro)
            micro += 1
            with accelerator.accumulate(self.model), training_attention_backends(accelerator.device):
                loss, logs = self.compute_loss(batch, generator)
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.optim.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(self.model.parameters(), config.optim.max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            for key, value in logs.items():
                step_logs[key] = step_logs.get(key, 0.0) + value / config.optim.gradient_accumulation_steps
            if not accelerator.sync_gradients:
                continue
            if self.ema is not None:
                self.ema.step([p for p in self.adapter.parameters() if p.requires_grad])
            self.global_step += 1
            self.stage.after_optimizer_step(self.global_step)
            if world > 1:  # the loss of the whole global batch, not rank 0's share
                step_logs = self.mean_over_processes(step_logs)
            step_logs["lr"] = self.lr_scheduler.get_last_lr()[0]
            history.append(step_logs)
            accelerator.log(step_logs, step=self.global_step)
            bar.set_postfix(loss=f"{step_logs['loss']:.4f}")
            bar.update()
            step_logs = {}
            if (
                self.global_step % config.checkpoints.checkpointing_steps == 0
                or self.global_step == config.optim.max_train_steps
            ):
                self.save_checkpoint()
            if config.validation.validation_steps and self.global_step % config.validation.validation_steps == 0:
                self.validate()
        bar.close()
        accelerator.wait_for_everyone()
        self.save_final()
        accelerator.end_training()
        return history

    def mean_over_processes(self, logs: dict[str, float]) -> dict[str, float]:
        """Each logged value averaged over the processes (one collective for all of them)."""
        names = sorted(logs)
        values = torch.tensor([logs[name] for name in names], dtype=torch.float64, device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(names, values.tolist(), strict=True))

    # ------------------------------------------------------------------ saving
    def _lora_state(self) -> dict[str, torch.Tensor] | None:
        if not self.uses_lora:
            return None
        from peft.utils import get_peft_model_state_dict

        return get_peft_model_state_dict(self.accelerator.unwrap_model(self.model).transformer)

    @staticmethod
    def _load_lora(transformer, folder: Path) -> None:
        from peft import set_peft_model_state_dict

        lora = FluxIRPipeline.lora_state_dict(str(folder), weight_name=LORA_WEIGHTS_NAME)
        lora = {k.removeprefix("transformer."): v for k, v in lora.items()}
        set_peft_model_state_dict(transformer, lora)

    def _save_weights(self, folder: Path, adapter_folder: Path) -> None:
        self.adapter.save_pretrained(adapter_folder)
        lora = self._lora_state()
        if lora is not None:
            FluxIRPipeline.save_lora_weights(folder, transformer_lora_layers=lora, weight_name=LORA_WEIGHTS_NAME)

    def save_checkpoint(self) -> None:
        """`checkpoint-<step>/` through `accelerator.save_state` on every process, published by one rename."""
        accelerator = self.accelerator
        final = self.output_dir / f"checkpoint-{self.global_step}"
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            staging_folder(final)  # emptied and created before any process writes into it
        accelerator.wait_for_everyone()
        folder = staging_path(final)
        accelerator.save_state(str(folder))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            self.config.save(folder)
            # written last: a checkpoint without it is incomplete and ignored by "latest"
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": self.global_step}))
            publish_checkpoint(folder, final)  # one rename: the folder under its final name is always complete
            prune_checkpoints(self.output_dir, self.config.checkpoints.checkpoints_total_limit)
        accelerator.wait_for_everyone()

    def _save_state_hook(self, models: list, weights: list, output_dir: str) -> None:
        """accelerate's save hook: the adapter (LoRA, EMA) as safetensors instead of the prepared module's state."""
        weights.clear()
        if self.accelerator.is_main_process:
            folder = Path(output_dir)
            self._save_weights(folder, folder / "adapter")
            if self.ema is not None:
                save_state(self.ema.state_dict(), folder, "ema")

    def _load_state_hook(self, models: list, input_dir: str) -> None:
        models.clear()  # the prepared module is not in the checkpoint; the adapter is
        self._load_weights(Path(input_dir))

    def resume_checkpoint(self) -> None:
        """Load the newest usable checkpoint; a damaged one (truncated file, bad JSON) is reported and skipped."""
        errors = []
        self.resumed = False
        for folder in self.resume_candidates:
            try:
                self._load_checkpoint(folder)
                self.resumed = True
                return
            except Exception as err:  # safetensors, JSON and shape errors alike mean "damaged"
                errors.append(f"{folder.name}: {err.__class__.__name__}: {str(err).splitlines()[0][:200]}")
                logger.warning("Checkpoint %s is damaged (%s); trying the one before it.", folder, errors[-1])
        if errors:
            raise ValueError(
                f"No usable checkpoint to resume from ({'; '.join(errors)}). Delete the damaged checkpoint folders or "
                "start a new output_dir."
            )

    def _load_checkpoint(self, folder: Path) -> None:
        state = json.loads((folder / "trainer_state.json").read_text())
        if (folder / "optimizer.safetensors").exists():  # the first format, before accelerate's save_state
            self._load_weights(folder)
            self.optimizer.load_state_dict(load_state(folder, "optimizer"))
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        else:
            self.accelerator.load_state(str(folder))
        self.global_step = state["global_step"]
        logger.info("Resumed from %s at step %d", folder, self.global_step)

    def _load_weights(self, folder: Path) -> None:
        from safetensors.torch import load_file

        loaded = load_file(str(folder / "adapter" / "diffusion_pytorch_model.safetensors"))
        self.adapter.load_state_dict(loaded)
        if self.uses_lora:
            self._load_lora(self.accelerator.unwrap_model(self.model).transformer, folder)
        if self.ema is not None:
            load_ema(self.ema, folder, self.accelerator.device)

    def save_final(self) -> None:
        if not self.accelerator.is_main_process:
            return
        if self.ema is not None:
            self.ema.copy_to([p for p in self.adapter.parameters() if p.requires_grad])
        self._save_weights(self.output_dir, self.output_dir)
        self.config.save(self.output_dir)
        from .hub import write_model_card

        steps = sorted(self.output_dir.glob("validation/step-*"), key=lambda p: int(p.name.split("-")[1]))
        write_model_card(self.output_dir, self.config, self.global_step, steps[-1] if steps else None)
        if self.config.validation.push_to_hub:
            from .hub import push_adapter

            push_adapter(
                self.output_dir, self.config.validation.hub_model_id, private=self.config.validation.hub_private
            )

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Restore a few LQ images, save them under `validation/step-N/`, log NR-IQA scores to the trackers."""
        if not (self.accelerator.is_main_process or self.sharded):  # a sharded base needs every process to run
            return {}
        from .validation import run_validation

        if self.ema is not None:
            params = [p for p in self.adapter.parameters() if p.requires_grad]
            self.ema.store(params)
            self.ema.copy_to(params)
        self.adapter.eval()
        try:
            scores = run_validation(self, self.output_dir / "validation" / f"step-{self.global_step}")
        finally:
            self.adapter.train()
            if self.ema is not None:
                self.ema.restore([p for p in self.adapter.parameters() if p.requires_grad])
        self.accelerator.log({f"validation/{k}": v for k, v in scores.items()}, step=self.global_step)
        return scores
