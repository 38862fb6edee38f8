import json
import shutil

import pytest
from PIL import Image

from fluxir_hub.cli.restore import main
from fluxir_hub.mini import has_mini_weights

from .helpers import photo


def test_cli_restores_folder_continues_past_bad_files_and_skips_done(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo("astronaut", (24, 16)).save(inputs / "a.png")
    photo("chelsea", (16, 16)).convert("P").save(inputs / "b.png")
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (inputs / "readme.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"

    code = main([str(inputs), "-o", str(out), "--tiny", "--steps", "1", "--upscale", "2"])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.jpg" in captured.err and "1 image(s) failed" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    with Image.open(out / "a.png") as restored:
        assert restored.size == (48, 32)
        assert json.loads(restored.text["fluxir"])["upscale"] == 2.0

    (inputs / "broken.jpg").unlink()
    before = (out / "a.png").stat().st_mtime_ns
    assert main([str(inputs), "-o", str(out), "--tiny", "--steps", "1", "--upscale", "2"]) == 0
    assert "Skipping 2 image(s)" in capsys.readouterr().out
    assert (out / "a.png").stat().st_mtime_ns == before
    assert main([str(inputs / "a.png"), "-o", str(out), "--tiny", "--steps", "1", "--overwrite"]) == 0
    with Image.open(out / "a.png") as restored:
        assert restored.size == (96, 64)  # default x4


def test_cli_clear_errors_without_gpu_or_inputs(tmp_path, capsys):
    photo().save(tmp_path / "x.png")
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", "org/base"]) == 2
    assert "is a base model: give the conditioning to use with --adapter" in capsys.readouterr().err
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--adapter", "org/name"]) == 2
    assert "No CUDA GPU found" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--tiny"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([str(tmp_path / "x.png"), "-o", str(blocker / "sub"), "--tiny"]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--steps", "0", "--steps: must be from 1 to 1000, got 0"),
        ("--upscale", "100", "--upscale: must be from 1 to 8, got 100"),
        ("--upscale", "nan", "--upscale: must be from 1 to 8, got nan"),
        ("--fidelity", "-0.1", "--fidelity: must be from 0 to 1, got -0.1"),
        ("--tile-size", "8", "--tile-size: must be at least 64 pixels"),
        ("--seed", "x", "--seed: expected an integer, got 'x'"),
    ],
)
def test_out_of_range_options_are_refused_before_any_model_loads(
    tmp_path, capsys, monkeypatch, option, value, message
):
    from fluxir_hub.cli import restore

    def must_not_load(args):
        raise AssertionError("a model was loaded for an invalid command line")

    monkeypatch.setattr(restore, "load_pipeline", must_not_load)
    photo().save(tmp_path / "x.png")
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), option, value])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_limits_match_the_pipeline():
    from fluxir_hub.cli import restore
    from fluxir_hub.pipelines import pipeline_fluxir

    assert restore.MAX_UPSCALE == pipeline_fluxir.MAX_UPSCALE


def test_inputs_sharing_a_name_get_distinct_outputs(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo("astronaut", (16, 16)).save(inputs / "photo.png")
    photo("chelsea", (16, 16)).save(inputs / "photo.jpg")
    out = tmp_path / "out"
    assert main([str(inputs), "-o", str(out), "--tiny", "--steps", "1", "--upscale", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo_jpg.png", "photo_png.png"]


def _restore(*argv):
    return main([*map(str, argv), "--tiny", "--steps", "1", "--upscale", "2"])


def test_outputs_never_collide_across_folders_and_renamed_stems(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        photo("astronaut", (16, 16)).save(tmp_path / folder / "x.png")
    dups = tmp_path / "dups"
    dups.mkdir()
    photo("chelsea", (16, 16)).save(dups / "dup.png")
    photo("coffee", (16, 16)).save(dups / "dup.jpg")
    photo("astronaut", (16, 16)).save(dups / "dup_png.png")
    photo("astronaut", (16, 16)).save(dups / "Case.png")
    photo("chelsea", (16, 16)).save(dups / "case.jpg")
    out = tmp_path / "out"
    inputs = [tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", dups]
    assert _restore(*inputs, "-o", out) == 0
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 7 and len({n.lower() for n in written}) == 7, written
    sources = {json.loads(Image.open(out / n).text["fluxir"])["source"] for n in written}
    assert len(sources) == 7  # every input has its own output
    # A rerun maps every input to the same name again and finds them all done.
    assert _restore(*inputs, "-o", out) == 0
    assert sorted(p.name for p in out.iterdir()) == written


def test_output_folder_equal_to_an_input_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    photo("astronaut", (16, 16)).save(folder / "x.png")
    original = (folder / "x.png").read_bytes()
    assert _restore(folder, "-o", folder, "--overwrite") == 2
    assert "also an input folder" in capsys.readouterr().err
    assert (folder / "x.png").read_bytes() == original and sorted(p.name for p in folder.iterdir()) == ["x.png"]


def test_an_input_is_never_overwritten_and_outputs_are_not_restored_again(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    photo("astronaut", (16, 16)).save(out / "x.png")  # an original that happens to live in the output folder
    original = (out / "x.png").read_bytes()
    assert _restore(out / "x.png", "-o", out, "--overwrite") == 0
    assert (out / "x.png").read_bytes() == original
    made = [p for p in out.iterdir() if p.name != "x.png"]
    assert len(made) == 1 and Image.open(made[0]).size == (32, 32)
    # Restoring the folder's files again (e.g. out/*.png) skips the output that is already there.
    assert _restore(*sorted(out.iterdir()), "-o", tmp_path / "again") == 0
    assert "1 input(s) that are fluxir-restore outputs" in capsys.readouterr().out
    assert len(list((tmp_path / "again").iterdir())) == 1


def test_outputs_use_the_umask_and_folders_report_skipped_files(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo("astronaut", (16, 16)).save(inputs / "x.png")
    photo("chelsea", (16, 16)).save(inputs / "anim.gif")
    (inputs / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic")
    (inputs / ".DS_Store").write_bytes(b"junk")
    assert _restore(inputs, "-o", tmp_path / "out") == 0
    out = capsys.readouterr().out
    assert "Skipped 2 file(s)" in out and "photo.heic" in out and ".DS_Store (hidden file)" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anim.png", "x.png"]  # GIFs are images too
    mode = (tmp_path / "out" / "x.png").stat().st_mode & 0o777
    assert mode == 0o666 & ~_current_umask()
    # An explicit HEIC path follows the same rule: tried, and its failure is named.
    assert _restore(inputs / "photo.heic", "-o", tmp_path / "out2") == 1
    assert "photo.heic: not a readable image" in capsys.readouterr().err


def _current_umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_disk_full_stops_with_a_message_and_no_partial_file(tmp_path, capsys, monkeypatch):
    import errno

    from PIL import Image as PILImage

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("a", "b"):
        photo("astronaut", (16, 16)).save(inputs / f"{name}.png")
    real_save = PILImage.Image.save
    calls = {"n": 0}

    def full_disk(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 1:  # the first output fits, the second does not
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(PILImage.Image, "save", full_disk)
    out = tmp_path / "out"
    assert _restore(inputs, "-o", out) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "1 image(s) were restored" in err and "rerun" in err
    assert [p.name for p in out.iterdir()] == ["a.png"]  # no temp file, no partial b.png


@pytest.mark.skipif(not has_mini_weights(), reason="no mini weights (run fluxir-build-mini)")
def test_default_restores_with_the_mini_model_and_says_so(tmp_path, capsys):
    photo("coffee", (24, 16)).save(tmp_path / "x.png")
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--steps", "2", "--upscale", "2"]) == 0
    out = capsys.readouterr().out
    assert "mini FluxIR model" in out and "not FLUX.1" in out
    with Image.open(tmp_path / "o" / "x.png") as restored:
        assert restored.size == (48, 32) and "mini" in json.loads(restored.text["fluxir"])["model"]
    # another task: the all-in-one adapter shipped beside the SR one, offline, same size
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "d"), "--steps", "2", "--task", "denoise"]) == 0
    with Image.open(tmp_path / "d" / "x.png") as restored:
        assert restored.size == (32, 16) and json.loads(restored.text["fluxir"])["task"] == "denoise"


def test_pipes_devices_and_missing_models_are_named_before_anything_opens_them(tmp_path, capsys):
    import os

    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)  # opening it would block forever
    assert main([str(fifo), "-o", str(tmp_path / "o"), "--tiny"]) == 2
    assert "f.png: not a regular file" in capsys.readouterr().err
    assert main(["/dev/zero", "-o", str(tmp_path / "o"), "--tiny"]) == 2
    assert "/dev/zero: not a regular file" in capsys.readouterr().err
    photo().save(tmp_path / "x.png")
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", "/nonexistent"]) == 2
    assert "--model /nonexistent: no such folder." in capsys.readouterr().err
    with pytest.raises(SystemExit):  # refused while parsing: nothing loaded yet
        main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--tile-size", "64", "--tile-overlap", "64"])
    assert "--tile-overlap (64) must be smaller than --tile-size (64)" in capsys.readouterr().err


def test_a_damaged_pipeline_folder_is_one_line_naming_the_file(tmp_path, capsys):
    from fluxir_hub.testing import tiny_pipeline

    photo().save(tmp_path / "x.png")
    tiny_pipeline().save_pretrained(tmp_path / "good")
    for name, damage in (
        ("truncated", lambda f: (f / "transformer/diffusion_pytorch_model.safetensors").write_bytes(b"\x00" * 100)),
        ("badjson", lambda f: (f / "transformer/config.json").write_text("{nope")),
    ):
        shutil.copytree(tmp_path / "good", tmp_path / name)
        damage(tmp_path / name)
        assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        said = [line for line in err.splitlines() if line.startswith("fluxir-restore:")]  # the rest: progress bars
        assert len(said) == 1 and "transformer/" in said[0] and "Traceback" not in err, err


def test_rerun_with_other_settings_restores_again(tmp_path, capsys):
    photo(size=(16, 16)).save(tmp_path / "x.png")
    out = tmp_path / "out"
    fast = [str(tmp_path / "x.png"), "-o", str(out), "--tiny", "--upscale", "1"]
    assert main([*fast, "--steps", "1"]) == 0
    first = (out / "x.png").read_bytes()
    assert main([*fast, "--steps", "1"]) == 0
    assert "Skipping 1 image(s) already restored" in capsys.readouterr().out
    assert main([*fast, "--steps", "1", "--seed", "7"]) == 0  # another seed: a new result, not the old one kept
    assert "Restored 1 image(s)" in capsys.readouterr().out
    assert (out / "x.png").read_bytes() != first and sorted(p.name for p in out.iterdir()) == ["x.png"]


def test_gpu_options_with_a_model_that_ignores_them_say_so(tmp_path, capsys):
    from fluxir_hub.testing import tiny_pipeline

    photo(size=(16, 16)).save(tmp_path / "x.png")
    tiny_pipeline().save_pretrained(tmp_path / "pipe")
    args = [str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "pipe"), "--steps", "1"]
    assert main([*args, "--offload", "model"]) == 0
    assert "--offload only apply to a base model on a GPU" in capsys.readouterr().out


def test_rerunning_a_subset_does_not_restore_it_again(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        photo().save(tmp_path / folder / "x.png")
    out = tmp_path / "out"
    fast = ["--tiny", "--steps", "1", "--upscale", "1"]
    assert main([str(tmp_path / "a/x.png"), str(tmp_path / "b/x.png"), "-o", str(out), *fast]) == 0
    made = sorted(p.name for p in out.iterdir())
    assert main([str(tmp_path / "b/x.png"), "-o", str(out), *fast]) == 0
    assert "Skipping 1 image(s) already restored" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == made  # no third file
    photo("coffee").save(tmp_path / "b" / "x.png")  # new bytes at the same path: restored again, in place
    assert main([str(tmp_path / "b/x.png"), "-o", str(out), *fast]) == 0
    assert "Restored 1 image(s)" in capsys.readouterr().out and sorted(p.name for p in out.iterdir()) == made


def test_an_adapter_trained_on_a_small_base_restores_on_the_cpu(tmp_path, capsys):
    from fluxir_hub.testing import tiny_pipeline

    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path / "base")
    pipe.adapter.save_pretrained(tmp_path / "adapter")
    photo(size=(16, 16)).save(tmp_path / "x.png")
    args = [str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--steps", "1", "--upscale", "1"]
    assert main([*args, "--model", str(tmp_path / "base"), "--adapter", str(tmp_path / "adapter")]) == 0
    assert "on the CPU" in capsys.readouterr().out and (tmp_path / "o" / "x.png").is_file()
    assert main([*args, "--adapter", str(tmp_path / "adapter"), "-o", str(tmp_path / "o2")]) == 2  # FLUX.1-dev: no
    assert "cannot run on this CPU" in capsys.readouterr().err
