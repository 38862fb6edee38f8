"""The import-only module files a saved folder carries (`<module>.py`: `from <package module> import <Class>`), so
diffusers' generic loaders find this package's classes; see `fluxir_hub.hub_code` for why and for the trust check."""

from __future__ import annotations

from pathlib import Path

PIPELINE_MODULE = "pipeline_fluxir"
_HEADER = '"""Loads {name} from the installed fluxir-hub package (pip install fluxir-hub); nothing else runs."""\n'


def import_file_source(source: str, name: str) -> str:
    """The text of a module file that imports class `name` from the Python module `source`."""
    return _HEADER.format(name=name) + f"from {source} import {name}  # noqa: F401\n"


def write_import_file(folder: str | Path, module: str, cls: type) -> Path:
    """Write `folder/<module>.py` importing `cls` from where it is defined."""
    path = Path(folder) / f"{module}.py"
    path.write_text(import_file_source(cls.__module__, cls.__name__))
    return path
