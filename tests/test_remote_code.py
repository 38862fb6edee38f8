"""Code in a model folder or Hub repo runs only with the user's explicit `trust_remote_code=True`."""

import json
import shutil

import pytest

from fluxir_hub import FluxIRPipeline
from fluxir_hub.testing import make_hub_cache, tiny_pipeline


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "pipe"
    tiny_pipeline().save_pretrained(folder)
    return folder


def _payload(marker, base_import: str, base: str, name: str) -> str:
    return f'open(r"{marker}", "w").write("ran")\n{base_import}\nclass {name}({base}):\n    pass\n'


def _point(folder, component: str, entry: list) -> None:
    index = json.loads((folder / "model_index.json").read_text())
    index[component] = entry
    (folder / "model_index.json").write_text(json.dumps(index))


def _route_component(component, module, base_import, base):
    def plant(folder, marker):
        (folder / component / f"{module}.py").write_text(_payload(marker, base_import, base, "Evil"))
        _point(folder, component, [module, "Evil"])
        return f"{component}/{module}.py"

    return plant


def _route_conditioning(folder, marker):
    (folder / "adapter" / "adapter_fluxir.py").write_text(
        f'open(r"{marker}", "w").write("ran")\nfrom fluxir_hub.models.adapter_fluxir import FluxIRAdapter\n'
    )
    return "adapter/adapter_fluxir.py"


def _route_pipeline_file(folder, marker):
    (folder / "pipeline_fluxir.py").write_text(
        f'open(r"{marker}", "w").write("ran")\nfrom fluxir_hub.pipelines.pipeline_fluxir import FluxIRPipeline\n'
    )
    return "pipeline_fluxir.py"


def _route_other_pipeline(folder, marker):
    (folder / "evil_pipe.py").write_text(
        _payload(marker, "from fluxir_hub import FluxIRPipeline", "FluxIRPipeline", "EvilPipe")
    )
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = ["evil_pipe", "EvilPipe"]
    (folder / "model_index.json").write_text(json.dumps(index))
    return "evil_pipe"


def _route_library_shadow(folder, marker):
    # diffusers imports `<component>/<library>.py` when it exists, even for the library's own name.
    (folder / "scheduler" / "diffusers.py").write_text(
        _payload(
            marker,
            "from diffusers import FlowMatchEulerDiscreteScheduler as S",
            "S",
            "FlowMatchEulerDiscreteScheduler",
        )
    )
    return "scheduler/diffusers.py"


def _route_auto_map(folder, marker):
    (folder / "adapter" / "evil_auto.py").write_text(
        _payload(marker, "from fluxir_hub import FluxIRAdapter", "FluxIRAdapter", "EvilAdapter")
    )
    config = json.loads((folder / "adapter" / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil_auto.EvilAdapter"}
    (folder / "adapter" / "config.json").write_text(json.dumps(config))
    return "evil_auto"


ROUTES = {
    "scheduler": _route_component(
        "scheduler",
        "evil_sched",
        "from diffusers import FlowMatchEulerDiscreteScheduler",
        "FlowMatchEulerDiscreteScheduler",
    ),
    "vae": _route_component("vae", "evil_vae", "from diffusers import AutoencoderKL", "AutoencoderKL"),
    "transformer": _route_component(
        "transformer", "evil_dit", "from diffusers import FluxTransformer2DModel", "FluxTransformer2DModel"
    ),
    "text_encoder": _route_component(
        "text_encoder", "evil_clip", "from transformers import CLIPTextModel", "CLIPTextModel"
    ),
    "conditioning": _route_conditioning,
    "pipeline_file": _route_pipeline_file,
    "custom_pipeline": _route_other_pipeline,
    "library_shadow": _route_library_shadow,
    "auto_map": _route_auto_map,
}


@pytest.mark.parametrize("source", ["folder", "hub"])
@pytest.mark.parametrize("route", list(ROUTES))
def test_foreign_code_is_refused_without_consent(saved, tmp_path, route, source):
    folder = tmp_path / "evil"
    shutil.copytree(saved, folder)
    marker = tmp_path / "PWNED"
    named = ROUTES[route](folder, marker)
    target, kwargs = str(folder), {}
    if source == "hub":
        make_hub_cache(folder, "someone/evil", tmp_path / "hub")
        target, kwargs = "someone/evil", {"cache_dir": tmp_path / "hub"}
    with pytest.raises(ValueError, match="trust_remote_code") as err:
        FluxIRPipeline.from_pretrained(target, **kwargs)
    assert named in str(err.value)
    assert not marker.exists(), "code from the folder ran without consent"


def test_consent_runs_the_folders_code(saved, tmp_path):
    folder = tmp_path / "evil"
    shutil.copytree(saved, folder)
    marker = tmp_path / "PWNED"
    ROUTES["scheduler"](folder, marker)
    pipe = FluxIRPipeline.from_pretrained(folder, trust_remote_code=True)
    assert marker.exists() and type(pipe.scheduler).__name__ == "Evil"


def test_our_own_module_files_load_without_a_flag(saved, tmp_path):
    pipe = FluxIRPipeline.from_pretrained(saved)
    assert type(pipe.adapter).__name__ == "FluxIRAdapter"
    make_hub_cache(saved, "me/fluxir", tmp_path / "hub")
    assert isinstance(FluxIRPipeline.from_pretrained("me/fluxir", cache_dir=tmp_path / "hub"), FluxIRPipeline)
    with pytest.raises(ValueError, match="trust_remote_code"):  # an explicit "no" is the caller's word
        FluxIRPipeline.from_pretrained(saved, trust_remote_code=False)


def test_the_mini_loader_and_the_cli_refuse_foreign_code(saved, tmp_path, capsys):
    from fluxir_hub.cli.restore import main
    from fluxir_hub.mini import load_mini_pipeline

    from .helpers import photo

    folder = tmp_path / "evil"
    shutil.copytree(saved, folder)
    marker = tmp_path / "PWNED"
    ROUTES["vae"](folder, marker)
    with pytest.raises(ValueError, match="vae/evil_vae.py"):
        load_mini_pipeline(folder)
    photo(size=(16, 16)).save(tmp_path / "in.png")
    assert main([str(tmp_path / "in.png"), "-o", str(tmp_path / "out"), "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "vae/evil_vae.py" in err and "--trust-remote-code" in err and "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "out" / "in.png").exists()
    assert (
        main(
            [
                str(tmp_path / "in.png"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(folder),
                "--trust-remote-code",
                "--steps",
                "1",
                "--upscale",
                "1",
            ]
        )
        == 0
    )
    assert marker.exists()
