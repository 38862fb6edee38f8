"""The small module files a saved FluxIR folder carries so diffusers' generic loaders find its classes.

diffusers loads classes it does not ship from module files inside the repo: `model_index.json` names
`["pipeline_fluxir", "FluxIRPipeline"]` and the repo root holds `pipeline_fluxir.py`; a conditioning component names
its `module_file` (`["adapter_fluxir", "FluxIRAdapter"]`, `["conditioning_ummf", "UMMFConditioner"]`,
`["adapter_dra", "DRAAdapter"]`) and its folder holds that file; `config.json`'s `auto_map` points `AutoModel` at the
same file. Each file only imports the class from the installed `fluxir-hub` package, so

    DiffusionPipeline.from_pretrained(repo, trust_remote_code=True)   # -> FluxIRPipeline
    AutoModel.from_pretrained(f"{repo}/adapter", trust_remote_code=True)   # -> the component's class

work, and a pushed pipeline passes diffusers' download check for custom components. `FluxIRPipeline.from_pretrained`
needs no `trust_remote_code` when every piece of code the folder names is exactly one of these files (see
[`foreign_code`]); anything else runs only with the caller's explicit `trust_remote_code=True`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .module_files import PIPELINE_MODULE, import_file_source


def _class_of_module(module: str) -> tuple[str, str]:
    """`(python module, class name)` a module file of ours imports."""
    if module == PIPELINE_MODULE:
        return "fluxir_hub.pipelines.pipeline_fluxir", "FluxIRPipeline"
    from .models import conditioning_classes

    for cls in conditioning_classes().values():
        if cls.module_file == module and cls.__module__.startswith("fluxir_hub."):
            return cls.__module__, cls.__name__
    raise ValueError(f"No fluxir_hub class is saved with the module file {module!r}.")


def module_source(module: str) -> str:
    """The text of the import-only module file `module`.py."""
    return import_file_source(*_class_of_module(module))


def is_our_module_file(path: str | Path, module: str) -> bool:
    """Whether `path` holds exactly the import-only file this package writes (so loading it runs no foreign code)."""
    path = Path(path)
    try:
        expected = module_source(module)
    except ValueError:
        return False
    return path.is_file() and path.read_text() == expected


def _our_classes() -> dict[str, str]:
    """`{module file: class name}` for every module file this package writes."""
    from .models import conditioning_classes

    ours = {PIPELINE_MODULE: "FluxIRPipeline"}
    for cls in conditioning_classes().values():
        if cls.__module__.startswith("fluxir_hub."):
            ours[cls.module_file] = cls.__name__
    return ours


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore or re-download that file.") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}.")
    return data


def foreign_code(folder: str | os.PathLike) -> list[str]:
    """
    Everything in a saved pipeline `folder` that would run code other than this package's own if loaded with
    `trust_remote_code=True`, one line each (empty: nothing foreign).

    Looked at: every `.py` file in the folder (diffusers imports `<component>/<module>.py` for any component whose
    `model_index.json` entry names `module`, and the root file its `_class_name` names); the pipeline class
    `model_index.json` names (a list there makes diffusers load a custom pipeline, from the folder, another repo or
    the community); each component's `[module, class]` and every `auto_map` in a component's `config.json`. A file
    counts as ours only when it is byte-identical to the one this package writes under that name.
    """
    folder = Path(folder)
    ours = _our_classes()
    problems = []
    index_path = folder / "model_index.json"
    index = _read_json(index_path) if index_path.is_file() else {}
    pipeline_class = index.get("_class_name")
    if isinstance(pipeline_class, list):
        if list(pipeline_class) != [PIPELINE_MODULE, ours[PIPELINE_MODULE]]:
            problems.append(f"model_index.json names the custom pipeline {pipeline_class!r}")
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
            continue
        module, class_name = entry
        if module in ours and class_name != ours[module]:
            problems.append(f"model_index.json names {module}.{class_name} for {name!r}")
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.name == "config.json" and path.is_file():
            auto_map = _read_json(path).get("auto_map") or {}
            targets = auto_map.values() if isinstance(auto_map, dict) else [auto_map]
            for target in targets:
                module, _, class_name = str(target).rpartition(".")
                if ours.get(module) != class_name or not is_our_module_file(path.parent / f"{module}.py", module):
                    problems.append(f"{relative} maps AutoModel to {target!r}")
        # Our import-only files are harmless wherever they lie; any other Python file is foreign.
        if path.suffix == ".py" and not is_our_module_file(path, path.stem):
            problems.append(f"{relative} is code this package did not write")
    return problems


def names_module_files(folder: str | os.PathLike) -> bool:
    """Whether loading the pipeline in `folder` imports module files from it (so diffusers asks for trust)."""
    return any(Path(folder).rglob("*.py"))


def check_folder_code(folder: str | os.PathLike, source: str | os.PathLike) -> bool:
    """
    Decide whether the pipeline in the local `folder` (`source`'s files: a folder or a Hub snapshot) may load with
    `trust_remote_code` on without the caller asking: only when every piece of code in it is this package's own.

    Returns:
        Whether trust is needed (the folder carries only our module files); `False` when it carries no code at all.

    Raises:
        ValueError: something in it would run foreign code; the message names each file and the flag.
    """
    problems = foreign_code(folder)
    if problems:
        raise ValueError(
            f"{source} carries code this package did not write, which loading would run: {'; '.join(problems)}. "
            "Read it, and if you trust it pass `trust_remote_code=True` (`--trust-remote-code` on the command "
            "line); otherwise use a folder saved by `FluxIRPipeline.save_pretrained`."
        )
    return names_module_files(folder)


def code_snapshot(name_or_path: str | os.PathLike, kwargs: dict) -> tuple[Path | None, str | None]:
    """The local folder holding the code and configs of the pipeline `name_or_path` (a folder, or a Hub repo's
    snapshot of its `.py` and `.json` files) and the commit it was read at (`None` for a folder); `(None, None)` when
    the Hub cannot be reached and nothing is cached, so diffusers' own loading reports that."""
    if Path(name_or_path).is_dir():
        return Path(name_or_path), None
    from huggingface_hub import snapshot_download

    hub = {k: kwargs[k] for k in ("revision", "cache_dir", "token", "local_files_only") if k in kwargs}
    try:
        folder = Path(snapshot_download(str(name_or_path), allow_patterns=["*.py", "*.json"], **hub))
    except Exception:  # not on the Hub, offline with nothing cached, gated: diffusers' loading says what is wrong
        return None, None
    return folder, folder.name  # a snapshot folder is named after its commit
