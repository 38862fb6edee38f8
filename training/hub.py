"""Model card and Hub upload of a trained adapter."""

from __future__ import annotations

import json
from pathlib import Path

from fluxir_hub.licences import card_licence

from .config import TrainConfig

TEMPLATE = Path(__file__).parent / "templates" / "model_card.md"
UPLOAD_IGNORE = ["checkpoint-*", "checkpoint-*/**", "logs/**", "validation/**", ".*"]
GALLERY = "gallery"  # the last validation's before/after images, uploaded with the card


def hub_id(name: str | None) -> str | None:
    """`name` when it is a Hub repo id (`org/name`), None for local folders and the embedded test models."""
    if not name or Path(name).exists() or name.count("/") != 1 or name.startswith((".", "/")):
        return None
    return name


def copy_gallery(folder: Path, validation_dir: Path | None) -> list[str]:
    """Copy the last validation's LQ/restored pairs into `folder/gallery`; returns their names, pairwise."""
    import shutil

    if validation_dir is None or not validation_dir.is_dir():
        return []
    target = Path(folder) / GALLERY
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    names = []
    for restored in sorted(p for p in validation_dir.glob("*.png") if not p.stem.endswith("_lq")):
        lq = restored.with_name(f"{restored.stem}_lq.png")
        if lq.exists():
            for path in (lq, restored):
                shutil.copy2(path, target / path.name)
            names.append(restored.stem)
    return names


def write_model_card(folder: Path, config: TrainConfig, steps: int, validation_dir: Path | None = None) -> Path:
    from huggingface_hub import ModelCard, ModelCardData

    from fluxir_hub.models import conditioning_names

    from .stages import get_stage, render_card_text

    stage = get_stage(config.run.stage)
    stage_options = getattr(config, stage.section) if stage.section else None
    base = hub_id(config.model.pretrained_model)
    tags = ["diffusers", "flux", "image-restoration", "fluxir", "super-resolution"] + (
        ["lora"] if config.model.use_lora else []
    )
    dataset = hub_id(config.data.dataset)
    gallery = copy_gallery(folder, validation_dir)
    adapter_config = Path(folder) / "config.json"
    # the saved component's config; before it is saved, the options it is built with
    component = json.loads(adapter_config.read_text()) if adapter_config.exists() else config.model.component_options()
    task_prompts = component.get("task_prompts")
    kind = conditioning_names()[config.model.conditioning][0]
    if task_prompts:
        tags.append("all-in-one")
    card_data = ModelCardData(
        library_name="diffusers",
        base_model=base,
        base_model_relation="adapter" if base else None,
        tags=tags,
        datasets=[dataset] if dataset else None,
        pipeline_tag="image-to-image",
        **card_licence([base, config.model.pretrained_model]),
    )
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        repo_id=config.validation.hub_model_id or "path/to/this/folder",
        base_model=base or "black-forest-labs/FLUX.1-dev",
        trained_on=config.model.pretrained_model,
        gallery=gallery,
        gallery_dir=GALLERY,
        data=config.data.dataset
        or f"HQ images in `{Path(config.data.hq_folder).name}`, degraded on the fly "
        f"(`{config.data.degradation_preset}`, x{config.data.scale})",
        steps=steps,
        config=config,
        effective_batch=config.optim.train_batch_size * config.optim.gradient_accumulation_steps,
        use_lora=config.model.use_lora,
        task_prompts=task_prompts or {},
        component_card=render_card_text(
            kind.card_text,
            component=component,
            base_model=base or "black-forest-labs/FLUX.1-dev",
            description=kind.description,
        ),
        stage_summary=render_card_text(stage.card_summary, config=config, options=stage_options),
        stage_loss=render_card_text(stage.card_loss, config=config, options=stage_options),
        stage_own_schedule=stage.own_schedule,
    )
    path = Path(folder) / "README.md"
    card.save(path)
    return path


class HubPushError(RuntimeError):
    """Training finished and the adapter is saved locally, but the upload failed (auth, network, repo id)."""


def push_adapter(folder: Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload the adapter weights, LoRA, config and card (not checkpoints or logs) to a model repo."""
    from huggingface_hub import HfApi

    try:
        api = HfApi(token=token)
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            ignore_patterns=UPLOAD_IGNORE,
            commit_message="Upload FluxIR adapter",
        )
    except Exception as err:  # any Hub or network failure: the local result is intact
        raise HubPushError(f"the upload to {repo_id} failed ({str(err).splitlines()[0]})") from err
    return str(url)
