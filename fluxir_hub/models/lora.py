"""A conditioning component's own LoRA on the base transformer, with a strength given per call.

UMMF (paper 003) and DRA's diffusion adapter (paper 004) train low-rank updates of the frozen base's projections. They
live here, inside the component (so the component's one weights file holds everything: `from_pretrained`,
`AutoModel` and a saved pipeline restore it), and act through diffusers hooks installed once on the base:

- a [`LoRAScaleHook`] on every block takes this call's strength out of its `joint_attention_kwargs` and makes it the
  current strength while the block runs;
- a [`LoRALinearHook`] on every targeted `nn.Linear` adds `scale * up(down(x))` to its output.

The strength lives in a `contextvars.ContextVar` for the duration of one block call: two calls in two threads with
different strengths never see each other's (peft's layers keep the scale as module state, which is why this is not
peft), and a call without the condition runs the plain base. The update at strength 1 is peft's LoRA with
`lora_alpha = r` (`init_lora_weights="gaussian"`: `down` drawn with std `1/r`, `up` zero); folders that `fluxir-train`
wrote in diffusers' LoRA format (`pytorch_lora_weights.safetensors`) load into it with [`ConditioningLoRA.load_diffusers`].
Under `torch.compile` each hooked projection is a graph break (the variable is read eagerly).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextvars import ContextVar

import torch
import torch.nn as nn
from diffusers.hooks import HookRegistry, ModelHook

from .conditioning import install_block_hooks, pop_block_kwarg, remove_block_hooks

LORA_KWARG = "conditioning_lora_scale"  # the `joint_attention_kwargs` entry with one call's strength
BLOCK_HOOK_NAME = "conditioning_lora_scale"
LINEAR_HOOK_NAME = "conditioning_lora"
_current_scale: ContextVar[float | None] = ContextVar("fluxir_conditioning_lora_scale", default=None)


def matches_target(name: str, targets: str | Sequence[str]) -> bool:
    """peft's matching: a regex matched against the whole module name, or a list of name suffixes."""
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def linear_targets(transformer: nn.Module, targets: str | Sequence[str]) -> list[tuple[str, int, int]]:
    """`(name, in_features, out_features)` of the `nn.Linear` modules of `transformer` that `targets` names."""
    return [
        (name, module.in_features, module.out_features)
        for name, module in transformer.named_modules()
        if isinstance(module, nn.Linear) and matches_target(name, targets)
    ]


def flux_linear_targets(geometry: dict, targets: str | Sequence[str]) -> list[tuple[str, int, int]]:
    """[`linear_targets`] of a FLUX transformer with `geometry` (its config values), built on the meta device."""
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        transformer = FluxTransformer2DModel(**geometry)
    return linear_targets(transformer, targets)


def lora_parameter_count(transformer, targets: str | Sequence[str], rank: int) -> int:
    """Parameters of a rank-`rank` LoRA on the `nn.Linear` modules of `transformer` that `targets` names:
    `rank * (in + out)` each. Works on the meta device."""
    return sum(rank * (i + o) for _, i, o in linear_targets(transformer, targets))


def _key(name: str) -> str:
    return name.replace(".", "__")  # module names hold dots, which `nn.ModuleDict` keys may not


class ConditioningLoRA(nn.Module):
    r"""
    Low-rank updates `W x + scale * up(down(x))` of named `nn.Linear` layers of a FLUX transformer.

    Args:
        targets (`list[tuple[str, int, int]]`): `(module name, in_features, out_features)` of each projection, as
            [`flux_linear_targets`] lists them.
        rank (`int`): Rank `r` of every update.
    """

    def __init__(self, targets: list[tuple[str, int, int]], rank: int):
        super().__init__()
        self.names = [name for name, _, _ in targets]
        self.down = nn.ModuleDict({_key(n): nn.Linear(i, rank, bias=False) for n, i, _ in targets})
        self.up = nn.ModuleDict({_key(n): nn.Linear(rank, o, bias=False) for n, _, o in targets})
        for name in self.names:  # peft's "gaussian" initialisation: the update starts at zero
            nn.init.normal_(self.down[_key(name)].weight, std=1 / rank)
            nn.init.zeros_(self.up[_key(name)].weight)

    def install(self, transformer: nn.Module) -> None:
        """Hook every block (the strength) and every targeted projection (the update) of `transformer`, replacing
        any hooks of these names (the owning component removes other kinds' first)."""
        modules = dict(transformer.named_modules())
        missing = [name for name in self.names if not isinstance(modules.get(name), nn.Linear)]
        if missing:
            raise ValueError(
                f"The transformer has no projection(s) {missing[:3]}: this LoRA was made for another base."
            )
        install_block_hooks(transformer, BLOCK_HOOK_NAME, lambda index: LoRAScaleHook())
        for name in self.names:
            registry = HookRegistry.check_if_exists_or_initialize(modules[name])
            registry.remove_hook(LINEAR_HOOK_NAME, recurse=False)
            registry.register_hook(LoRALinearHook(self.down[_key(name)], self.up[_key(name)]), LINEAR_HOOK_NAME)

    @staticmethod
    def uninstall(transformer: nn.Module) -> None:
        """Remove the hooks of whichever LoRA is installed on `transformer`."""
        remove_block_hooks(transformer, BLOCK_HOOK_NAME)
        for module in transformer.modules():
            registry = getattr(module, "_diffusers_hook", None)
            if registry is not None and isinstance(module, nn.Linear):
                registry.remove_hook(LINEAR_HOOK_NAME, recurse=False)

    @staticmethod
    def call_kwargs(joint_attention_kwargs: dict | None, scale: float) -> dict:
        """`joint_attention_kwargs` of one call that applies the LoRA at strength `scale`."""
        return {**(joint_attention_kwargs or {}), LORA_KWARG: float(scale)}

    def load_diffusers(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Take the weights of a LoRA saved in diffusers' format (`transformer.<name>.lora_A.weight` /
        `.lora_B.weight`, rank and targets as this one's); anything missing or extra is refused."""
        expected = set()
        for name in self.names:
            for part, module in (("lora_A", self.down), ("lora_B", self.up)):
                key = f"transformer.{name}.{part}.weight"
                expected.add(key)
                if key not in state_dict:
                    raise ValueError(f"The LoRA file has no {key}: it was made for another base or rank.")
                module[_key(name)].weight.data.copy_(state_dict[key])
        extra = sorted(set(state_dict) - expected)
        if extra:
            raise ValueError(f"The LoRA file holds weights this conditioning does not use, e.g. {extra[:2]}.")


class LoRAScaleHook(ModelHook):
    """On a base block: the call's LoRA strength (taken out of `joint_attention_kwargs`) is current while it runs."""

    def new_forward(self, module: nn.Module, *args, **kwargs):
        scale, args, kwargs = pop_block_kwarg(args, kwargs, LORA_KWARG)
        if scale is None:
            return self.fn_ref.original_forward(*args, **kwargs)
        token = _current_scale.set(scale)
        try:
            return self.fn_ref.original_forward(*args, **kwargs)
        finally:
            _current_scale.reset(token)


class LoRALinearHook(ModelHook):
    """On a targeted projection: adds `scale * up(down(x))` while a strength is current (holds the two low-rank
    layers by reference: the transformer's parameters never include them)."""

    def __init__(self, down: nn.Linear, up: nn.Linear):
        super().__init__()
        self.down = down
        self.up = up

    def new_forward(self, module: nn.Module, x: torch.Tensor):
        out = self.fn_ref.original_forward(x)
        scale = _current_scale.get()
        if not scale:
            return out
        # Compute in the LoRA's dtype, unless its weights are stored in fp8 (layerwise casting): diffusers' hook on
        # `down`/`up` upcasts them to the compute dtype only inside their forward, so the input keeps its own.
        dtype = self.down.weight.dtype
        update = self.up(self.down(x if dtype.itemsize == 1 else x.to(dtype)))
        return out + (update * scale).to(out.dtype)
