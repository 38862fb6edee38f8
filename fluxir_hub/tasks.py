"""The seven restoration tasks of FLUX-IR (paper 002) and the text an all-in-one model sees for them.

The task table is read from the degradation families (`fluxir_hub.degradations.table`); the prompts are the ones
the authors' released code pairs with each task, in training data and at inference (`../shared/research/flux_ir.md`
§3). An all-in-one adapter learns which task it is doing from its prompt.
"""

from __future__ import annotations

from .degradations.table import TASKS, RestorationTask, get_task, task_prompt

__all__ = ["TASKS", "RestorationTask", "get_task", "resolve_task_prompt", "task_prompt"]


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
