"""The seven restoration tasks of FLUX-IR (paper 002) and their fixed prompts.

The prompts are the ones the authors' released code pairs with each task, in training data and at inference
(`../shared/research/flux_ir.md` §3). An all-in-one adapter learns which task it is doing from its prompt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestorationTask:
    """A restoration task: its prompt, the preset that makes its training pairs, and the sampling settings that suit
    it. Tasks whose degradation *is* the colour or brightness (low light, underwater, snow haze) must not copy the
    LQ's colours back (the colour fix) nor pull the latent toward the LQ (the restoration sampling strategy)."""

    name: str
    title: str
    prompt: str
    preset: str  # the degradation preset that makes training pairs for it
    resizes: bool = False  # only super-resolution changes the image size
    keeps_colors: bool = True  # the LQ's colours are right: the wavelet colour fix and the LQ pull are safe

    @property
    def color_fix(self) -> str:
        return "wavelet" if self.keeps_colors else "none"

    @property
    def restoration_weight(self) -> float | None:
        """`None`: the pipeline's default; 0 where pulling toward the LQ would keep its wrong colours."""
        return None if self.keeps_colors else 0.0


TASKS: dict[str, RestorationTask] = {
    task.name: task
    for task in (
        RestorationTask(
            "sr", "Super-resolution (real-world)", "high-resolution, ultra-sharp, detailed", "seesr", True
        ),
        RestorationTask("motion_blur", "Motion deblurring", "sharp, deblurred, clear", "motion_blur"),
        RestorationTask("low_light", "Low-light enhancement", "bright, clear, vivid", "low_light", keeps_colors=False),
        RestorationTask(
            "underwater",
            "Underwater enhancement",
            "clear, reduce backscatter, restore colors",
            "underwater",
            keeps_colors=False,
        ),
        RestorationTask("denoise", "Denoising", "noise-free, clean, smooth", "denoise"),
        RestorationTask("raindrop", "Raindrop removal", "remove raindrops, clean", "raindrop"),
        RestorationTask("desnow", "Desnowing", "remove snowflakes, snow-free", "desnow", keeps_colors=False),
    )
}


def get_task(name: str) -> RestorationTask:
    if name not in TASKS:
        raise ValueError(f"Unknown restoration task {name!r}; choose one of {', '.join(TASKS)}.")
    return TASKS[name]


def task_prompt(task: str, caption: str = "") -> str:
    """The text an all-in-one model sees for `task`: the task's prompt, after an image caption when there is one."""
    prompt = get_task(task).prompt
    return f"{caption}, {prompt}" if caption else prompt


def resolve_task_prompt(task_prompts: dict[str, str] | None, task: str | None, prompt: str = "") -> str:
    """
    The text a call encodes: `prompt`, followed by the component's prompt for `task` (`task_prompts`, from an
    all-in-one component's config).

    Raises:
        ValueError: an unknown task, or one the component was not trained for.
    """
    if task is None:
        return prompt
    get_task(task)  # an unknown task is named
    if not task_prompts:
        if task == "sr":  # a super-resolution adapter: trained on the empty (or the caller's) prompt
            return prompt
        raise ValueError(
            f"This adapter was trained for super-resolution only (its config has no `task_prompts`), so it cannot "
            f"do task {task!r}. Use task='sr', or load an all-in-one adapter (fluxir-train --degradation_preset mixed)."
        )
    if task not in task_prompts:
        raise ValueError(f"This adapter was not trained for task {task!r}; it knows {', '.join(task_prompts)}.")
    return f"{prompt}, {task_prompts[task]}" if prompt else task_prompts[task]
