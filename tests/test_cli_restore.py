import json

from PIL import Image

from fluxir_hub.cli.restore import main

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
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o")]) == 2
    assert "--adapter is required" in capsys.readouterr().err
    assert main([str(tmp_path / "x.png"), "-o", str(tmp_path / "o"), "--adapter", "org/name"]) == 2
    assert "No CUDA GPU found" in capsys.readouterr().err
    assert main([str(tmp_path / "nope"), "-o", str(tmp_path / "o"), "--tiny"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([str(tmp_path / "x.png"), "-o", str(blocker / "sub"), "--tiny"]) == 2
    assert "cannot write to the output folder" in capsys.readouterr().err


def test_inputs_sharing_a_name_get_distinct_outputs(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo("astronaut", (16, 16)).save(inputs / "photo.png")
    photo("chelsea", (16, 16)).save(inputs / "photo.jpg")
    out = tmp_path / "out"
    assert main([str(inputs), "-o", str(out), "--tiny", "--steps", "1", "--upscale", "2"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo_jpg.png", "photo_png.png"]
