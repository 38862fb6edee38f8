"""The small module files a saved FluxIR folder carries so diffusers' generic loaders find its classes.

diffusers loads classes it does not ship from module files inside the repo: `model_index.json` names
`["pipeline_fluxir", "FluxIRPipeline"]` and the repo root holds `pipeline_fluxir.py`; a conditioning component names
its `module_file` (`["adapter_fluxir", "FluxIRAdapter"]`, `["conditioning_ummf", "UMMFConditioner"]`,
`["adapter_dra", "DRAAdapter"]`) and its folder holds that file; `config.json`'s `auto_map` points `AutoModel` at the
same file. Each file only imports the class from the installed `fluxir-hub` package, so

    DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)   # -> FluxIRPipeline
    AutoModel.from_pretrained(f"{repo}/adapter", trust_remote_code=True)   # -> the component's class

work, and a pushed pipeline passes diffusers' download check for custom components. `FluxIRPipeline.from_pretrained`
needs no `trust_remote_code` when the files are exactly these (see [`is_our_module_file`]).
"""

from __future__ import annotations

from pathlib import Path

PIPELINE_MODULE = "pipeline_fluxir"
ADAPTER_MODULE = "adapter_fluxir"  # the FluxIR adapter's module file
_HEADER = '"""Loads {name} from the installed fluxir-hub package (pip install fluxir-hub); nothing else runs."""\n'


def _class_of_module(module: str) -> tuple[str, str]:
    """`(python module, class name)` a module file of ours imports."""
    if module == PIPELINE_MODULE:
        return "fluxir_hub.pipelines.pipeline_fluxir", "FluxIRPipeline"
    from .models.conditioning import conditioning_classes

    for cls in conditioning_classes().values():
        if cls.module_file == module and cls.__module__.startswith("fluxir_hub."):
            return cls.__module__, cls.__name__
    raise ValueError(f"No fluxir_hub class is saved with the module file {module!r}.")


def module_source(module: str) -> str:
    """The text of the import-only module file `module`.py."""
    source, name = _class_of_module(module)
    return _HEADER.format(name=name) + f"from {source} import {name}  # noqa: F401\n"


def write_module_file(folder: str | Path, module: str) -> Path:
    path = Path(folder) / f"{module}.py"
    path.write_text(module_source(module))
    return path


def is_our_module_file(path: str | Path, module: str) -> bool:
    """Whether `path` holds exactly the import-only file this package writes (so loading it runs no foreign code)."""
    path = Path(path)
    try:
        expected = module_source(module)
    except ValueError:
        return False
    return path.is_file() and path.read_text() == expected
