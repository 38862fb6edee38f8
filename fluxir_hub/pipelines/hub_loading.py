"""Saving and loading a restoration pipeline: `model_index.json` naming our module files, the trust check before
loading, and swapping the conditioning component."""

from __future__ import annotations

import json
import os
from pathlib import Path


class ConditioningPipelineHubMixin:
    """[`~diffusers.DiffusionPipeline`] saving and loading for pipelines whose `adapter` is a conditioning component
    ([`~fluxir_hub.models.conditioning.ConditioningMixin`]). Put it before `DiffusionPipeline` in the bases."""

    def to_json_string(self) -> str:
        """`model_index.json` naming the module files diffusers' generic loaders resolve (see `fluxir_hub.hub_code`):
        `DiffusionPipeline.from_pretrained(..., trust_remote_code=True)` then returns this class, and a pushed
        pipeline passes diffusers' download check for custom components."""
        from ..module_files import PIPELINE_MODULE

        data = json.loads(super().to_json_string())
        data["_class_name"] = [PIPELINE_MODULE, self.__class__.__name__]
        module_file = getattr(getattr(self, "adapter", None), "module_file", None)
        if isinstance(data.get("adapter"), list) and module_file is not None:
            data["adapter"] = [module_file, type(self.adapter).__name__]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """[`~diffusers.DiffusionPipeline.save_pretrained`], plus `pipeline_fluxir.py` at the root (written first, so a
        `push_to_hub=True` upload includes it); the adapter writes its own module file."""
        from ..module_files import PIPELINE_MODULE, write_import_file

        Path(save_directory).mkdir(parents=True, exist_ok=True)
        write_import_file(save_directory, PIPELINE_MODULE, type(self))
        super().save_pretrained(
            save_directory,
            safe_serialization=safe_serialization,
            variant=variant,
            max_shard_size=max_shard_size,
            push_to_hub=push_to_hub,
            **kwargs,
        )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        """[`~diffusers.DiffusionPipeline.from_pretrained`]. A folder or repo saved by this class names its classes
        through small module files; when every piece of code it carries is exactly the import-only files this package
        writes, no `trust_remote_code` is needed (nothing else would run). Any other code runs only with the caller's
        explicit `trust_remote_code=True`; without it, loading stops before anything runs, naming each file.

        Raises:
            ValueError: the folder or repo carries code this package did not write and `trust_remote_code` is not set.
        """
        from ..hub_code import check_folder_code, code_snapshot

        if not kwargs.get("trust_remote_code") and "custom_pipeline" not in kwargs:
            folder, commit = code_snapshot(pretrained_model_name_or_path, kwargs)
            if folder is not None and check_folder_code(folder, pretrained_model_name_or_path):
                if kwargs.get("trust_remote_code") is None:  # an explicit `False` stays the caller's word
                    kwargs["trust_remote_code"] = True
                if commit is not None:  # load exactly the files checked, even if the branch moves meanwhile
                    kwargs["revision"] = commit
        # A conditioning passed by the caller replaces the folder's: diffusers would try to import the module file
        # `model_index.json` names for it to check its type, so it is put in after loading instead.
        component = kwargs.get("adapter")
        if component is not None:
            kwargs["adapter"] = None  # not loaded from the folder at all
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if component is not None:
            pipe.load_conditioning(None, component=component)
        return pipe

    def load_conditioning(self, pretrained_model_name_or_path: str | os.PathLike, component=None, **kwargs) -> None:
        r"""
        Make a saved conditioning component this pipeline's `adapter`, whichever kind it is (a FluxIR adapter, UMMF,
        a DRA adapter, or any other registered [`ConditioningMixin`] class; the folder's config says which). The
        previous component's hooks leave the transformer; the new one's are installed.

        Args:
            pretrained_model_name_or_path (`str` or `os.PathLike`): Hub repo id or folder.
            component (*optional*): The component, when the caller already loaded it from that folder.
            kwargs: Passed to `from_pretrained` (`revision`, `dtype`, `token`, ...).

        Raises:
            ValueError: the folder is not a conditioning component, or it was made for another base geometry.
        """
        from ..models.conditioning import load_conditioning_component

        if component is None:
            component = load_conditioning_component(pretrained_model_name_or_path, **kwargs)
        component.check_compatible(self.transformer)
        if getattr(self, "adapter", None) is not None:
            self.adapter.uninstall(self.transformer)
        component.to(self.transformer.device)
        component.install(self.transformer)
        self.register_modules(adapter=component)
