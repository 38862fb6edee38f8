"""The repository as users and Spaces see it: the Space's front matter and requirements, console scripts, quiet imports,
and every benchmark's CPU path run as the README writes it."""

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    return yaml.safe_load(text.split("---", 2)[1])


def _requirement_names(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~ ]", line, maxsplit=1)[0].lower().replace("_", "-")
            out[name] = line.replace(" ", "")
    return out


def test_space_front_matter_and_requirements():
    meta = _front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).exists()
    assert len(meta["short_description"]) <= 60, meta["short_description"]
    requirements = _requirement_names((ROOT / "requirements.txt").read_text().splitlines())
    assert "." not in requirements and "gradio" not in requirements  # Spaces install these before the repo is there
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = _requirement_names(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        declared.update(_requirement_names(extra))
    for name, spec in requirements.items():
        assert declared.get(name) == spec, f"requirements.txt {spec} differs from pyproject.toml {declared.get(name)}"
    # everything the Space imports at runtime is there
    for needed in ("torch", "diffusers", "transformers", "spaces", "safetensors", "pyiqa"):
        assert needed in requirements, needed


def test_space_preloads_the_diffusers_files_of_every_model_it_lists():
    meta = _front_matter()
    preload = {entry.split()[0]: entry.split()[1].split(",") for entry in meta["preload_from_hub"]}
    assert set(preload) <= set(meta["models"])
    files = preload["black-forest-labs/FLUX.1-dev"]
    assert "model_index.json" in files and not any(name.startswith("flux1-") for name in files)  # no single-file copy
    for folder in ("scheduler", "transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2"):
        assert any(name.startswith(f"{folder}/") for name in files), folder
    shards = [name for name in files if name.startswith("transformer/diffusion_pytorch_model-")]
    assert len(shards) == 3 and "transformer/diffusion_pytorch_model.safetensors.index.json" in files


def test_console_scripts_resolve_to_main_functions():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"fluxir-restore", "fluxgen", "fluxir-train", "fluxir-eval", "fluxir-build-mini"} <= set(scripts)
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


def test_importing_the_package_prints_nothing_and_loads_no_model_code():
    code = "import fluxir_hub, sys; print('diffusers' in sys.modules, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.stderr == "" and result.stdout.strip() == "False False"


def test_importing_every_public_class_prints_nothing():
    """diffusers imports bitsandbytes (a pyiqa dependency) when installed, which logged a warning to stderr on
    AVX512-BF16 CPUs with no handler configured; a library import must stay silent."""
    code = "import fluxir_hub\nfor name in fluxir_hub.__all__: getattr(fluxir_hub, name)\nimport training.trainer"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]


BENCHMARKS = [
    ["benchmarks/flops_adapter.py", "--size", "64"],
    ["benchmarks/gpu_fullsize.py", "--config", "tiny", "--device", "cpu", "--size", "64", "--steps", "2",
     "--part", "eager", "tts", "train"],
    ["benchmarks/pipeline_cpu.py", "--quick"],
    ["benchmarks/degradation_throughput.py", "--images", "4"],
    ["benchmarks/train_cpu.py", "--steps", "2", "--quick"],
]  # fmt: skip


@pytest.mark.parametrize("argv", BENCHMARKS, ids=lambda argv: Path(argv[0]).stem)
def test_benchmark_cpu_paths_run_as_written(argv, tmp_path):
    """Run from a fresh-clone layout: `python benchmarks/x.py` from the repository root, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
