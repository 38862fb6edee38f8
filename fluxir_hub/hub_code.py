"""The small module files a saved FluxIR folder carries so diffusers' generic loaders find its classes.

diffusers loads classes it does not ship from module files inside the repo: `model_index.json` names
`["pipeline_fluxir", "FluxIRPipeline"]` and the repo root holds `pipeline_fluxir.py`; a custom component names
`["adapter_fluxir", "FluxIRAdapter"]` and its folder holds `adapter_fluxir.py`; `config.json`'s `auto_map` points
`AutoModel` at the same file. Each file only imports the class from the installed `fluxir-hub` package, so

    DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)   # -> FluxIRPipeline
    AutoModel.from_pretrained(f"{repo}/adapter", trust_remote_code=True)   # -> FluxIRAdapter

work, and a pushed pipeline passes diffusers' download check for custom components. `FluxIRPipeline.from_pretrained`
needs no `trust_remote_code` when the files are exactly these (see [`is_our_module_file`]).
"""

from __future__ import annotations

from pathlib import Path

PIPELINE_MODULE = "pipeline_fluxir"
ADAPTER_MODULE = "adapter_fluxir"
_HEADER = '"""Loads {name} from the installed fluxir-hub package (pip install fluxir-hub); nothing else runs."""\n'
MODULE_FILES = {
    PIPELINE_MODULE: _HEADER.format(name="FluxIRPipeline")
    + "from fluxir_hub.pipelines.pipeline_fluxir import FluxIRPipeline  # noqa: F401\n",
    ADAPTER_MODULE: _HEADER.format(name="FluxIRAdapter")
    + "from fluxir_hub.models.adapter_fluxir import FluxIRAdapter  # noqa: F401\n",
}


def write_module_file(folder: str | Path, module: str) -> Path:
    path = Path(folder) / f"{module}.py"
    path.write_text(MODULE_FILES[module])
    return path


def is_our_module_file(path: str | Path, module: str) -> bool:
    """Whether `path` holds exactly the import-only file this package writes (so loading it runs no foreign code)."""
    path = Path(path)
    return path.is_file() and path.read_text() == MODULE_FILES[module]
