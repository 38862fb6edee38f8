import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fluxir_hub.cli.evaluate import main
from fluxir_hub.evaluation import PAPER_METRICS, create_scorers, render_table

from .helpers import photo


@pytest.fixture(scope="module")
def div2k_like(tmp_path_factory):
    """A tiny DIV2K-like HR folder of skimage photos (at least the crop size)."""
    folder = tmp_path_factory.mktemp("div2k_hr")
    for name in ("astronaut", "chelsea", "coffee"):
        photo(name, (160, 144)).save(folder / f"{name}.png")
    return folder


def test_metric_names_map_to_the_papers_pyiqa_models():
    assert PAPER_METRICS == {"PSNR": "psnr", "SSIM": "ssim", "LPIPS": "lpips", "CLIPIQA": "clipiqa+_vitL14_512",
                             "MUSIQ": "musiq", "MANIQA": "maniqa-pipal"}  # fmt: skip
    import pyiqa

    assert set(PAPER_METRICS.values()) <= set(pyiqa.list_models())


def test_psnr_and_ssim_equal_pyiqa_on_known_pairs():
    import pyiqa

    scorers = create_scorers(["PSNR", "SSIM"])
    a = torch.from_numpy(np.asarray(photo("camera", (64, 64)), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    b = (a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert float(scorers["PSNR"](b, a)) == pytest.approx(float(pyiqa.create_metric("psnr")(b, a)))
    assert float(scorers["SSIM"](b, a)) == pytest.approx(float(pyiqa.create_metric("ssim")(b, a)))
    mse = float(((b - a) ** 2).mean())
    assert float(scorers["PSNR"](b, a)) == pytest.approx(10 * np.log10(1 / mse), abs=0.05)
    assert float(scorers["PSNR"](a, a)) > 60 and float(scorers["SSIM"](a, a)) == pytest.approx(1.0, abs=1e-4)


def test_div2k_val_build_is_deterministic_with_exact_sizes(div2k_like, tmp_path):
    args = ["build", "div2k-val", "--source", str(div2k_like), "--count", "4", "--crop", "128", "--seed", "3"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    names = sorted(p.name for p in (tmp_path / "a" / "lq").iterdir())
    assert len(names) == 4
    for name in names:
        for kind, size in (("hq", (128, 128)), ("lq", (32, 32))):
            a, b = Image.open(tmp_path / "a" / kind / name), Image.open(tmp_path / "b" / kind / name)
            assert a.size == size and a.tobytes() == b.tobytes()
    assert main([*args[:-1], "4", "-o", str(tmp_path / "c")]) == 0  # another seed draws other crops
    import json

    boxes = [[e["source"], e["box"]] for e in json.loads((tmp_path / "a" / "benchmark.json").read_text())["entries"]]
    other = [[e["source"], e["box"]] for e in json.loads((tmp_path / "c" / "benchmark.json").read_text())["entries"]]
    assert boxes != other


def test_paired_and_lq_only_builds(tmp_path, capsys):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    hr.mkdir(), lr.mkdir()
    for i, name in enumerate(("astronaut", "chelsea")):
        photo(name, (160, 160)).save(hr / f"Canon_{i:03d}_HR.png")
        photo(name, (40, 40)).save(lr / f"Canon_{i:03d}_LR4.png")
    photo("coffee", (160, 160)).save(hr / "Nikon_999_HR.png")  # unmatched: reported, not built
    # a 128 px HQ crop takes a 32 px LQ crop: the pair stays aligned whatever --crop is
    assert main(["build", "realsr", "--source", str(hr), "--lq-source", str(lr), "--crop", "128", "-o",
                 str(tmp_path / "small")]) == 0  # fmt: skip
    assert Image.open(tmp_path / "small" / "lq" / "Canon_000.png").size == (32, 32)
    assert main(["build", "realsr", "--source", str(hr), "--lq-source", str(lr), "-o",
                 str(tmp_path / "big")]) == 2  # 160 px HR < the 1024 px crop  # fmt: skip
    for i, name in enumerate(("astronaut", "chelsea")):
        photo(name, (1100, 1100)).save(hr / f"Canon_{i:03d}_HR.png")
        photo(name, (275, 275)).save(lr / f"Canon_{i:03d}_LR4.png")
    assert main(["build", "realsr", "--source", str(hr), "--lq-source", str(lr), "-o", str(tmp_path / "realsr")]) == 0
    assert Image.open(tmp_path / "realsr" / "hq" / "Canon_000.png").size == (1024, 1024)
    assert Image.open(tmp_path / "realsr" / "lq" / "Canon_000.png").size == (256, 256)
    assert main(["build", "reallq250", "--source", str(lr), "-o", str(tmp_path / "lq250")]) == 0
    assert "2 images instead of 250" in capsys.readouterr().err  # not the published set: said, not hidden
    assert not (tmp_path / "lq250" / "hq").exists() and len(list((tmp_path / "lq250" / "lq").iterdir())) == 2


def test_table_lists_every_metric_and_method_and_marks_the_best():
    results = {"RealSR": {"a": {"PSNR": 20.0, "LPIPS": 0.30}, "b": {"PSNR": 21.0, "LPIPS": 0.35}}}
    table = render_table(results, ["PSNR", "LPIPS"], paper_reference=True)
    assert "| RealSR | PSNR ↑ | 20.00 | **21.00** | 20.72 |" in table
    assert "| RealSR | LPIPS ↓ | **0.3000** | 0.3500 | 0.3672 |" in table
    assert table.splitlines()[0] == "| Dataset | Metric | a | b | FluxIR (paper) |"


def test_end_to_end_tiny_pipeline_and_bicubic_with_a_missing_image(div2k_like, tmp_path, capsys):
    bench = tmp_path / "bench"
    assert (
        main(["build", "div2k-val", "--source", str(div2k_like), "--count", "3", "--crop", "128", "-o", str(bench)])
        == 0
    )
    results = tmp_path / "results" / "div2k-val"
    assert main(["restore", str(bench), "-o", str(results / "bicubic"), "--method", "bicubic"]) == 0
    assert (
        main(["restore", str(bench), "-o", str(results / "fluxir"), "--method", "fluxir", "--tiny", "--steps", "2"])
        == 0
    )
    # another method's folder with one image missing
    (results / "other").mkdir()
    names = sorted(p.name for p in (bench / "lq").iterdir())
    for name in names[:-1]:
        Image.open(results / "bicubic" / name).save(results / "other" / name)
    capsys.readouterr()
    report = tmp_path / "report"
    code = main(["score", "--bench", f"div2k-val={bench}", "--results", str(tmp_path / "results"), "--methods",
                 "bicubic", "fluxir", "other", "--metrics", "PSNR,SSIM,PIQE", "-o", str(report)])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    table = (report / "table.md").read_text()
    for metric in ("PSNR", "SSIM", "PIQE"):
        assert f"| DIV2K-Val | {metric}" in table
    assert "| bicubic | fluxir | other |" in table
    assert "n/a" in table and "1 of 3 results missing" in table and "1 of 3 results missing" in captured.err
    with (report / "div2k-val" / "bicubic.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["name"] for r in rows] == [n[:-4] for n in names] and all(float(r["PSNR"]) > 10 for r in rows)
    # resumable: a second run reuses the CSV rows and gives the same table
    assert main(["score", "--bench", f"div2k-val={bench}", "--results", str(tmp_path / "results"), "--methods",
                 "bicubic", "fluxir", "other", "--metrics", "PSNR,SSIM,PIQE", "-o", str(report)]) == 0  # fmt: skip
    assert (report / "table.md").read_text() == table


def test_build_refuses_misaligned_or_impossible_settings(div2k_like, tmp_path, capsys):
    def error(*argv):
        assert main(["build", *argv, "-o", str(tmp_path / "x")]) == 2
        return capsys.readouterr().err

    assert "must be at least 16 and divide by --scale 4" in error(
        "div2k-val", "--source", str(div2k_like), "--crop", "130"
    )
    assert "--count must be at least 1" in error("div2k-val", "--source", str(div2k_like), "--count", "0")
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    hr.mkdir(), lr.mkdir()
    photo("astronaut", (512, 512)).save(hr / "a_HR.png")
    photo("astronaut", (512, 512)).save(lr / "a_LR4.png")  # LR upsampled back to HR size
    message = error("realsr", "--source", str(hr), "--lq-source", str(lr), "--crop", "256")
    assert "a_HR.png is 512x512 and a_LR4.png is 512x512: not an x4 pair" in message and "upsampled" in message
    assert not (tmp_path / "x" / "hq").exists()  # nothing half-built


def test_score_recomputes_rows_whose_images_changed(div2k_like, tmp_path):
    bench, results = tmp_path / "bench", tmp_path / "results" / "div2k-val"
    assert (
        main(["build", "div2k-val", "--source", str(div2k_like), "--count", "2", "--crop", "128", "-o", str(bench)])
        == 0
    )
    assert main(["restore", str(bench), "-o", str(results / "bicubic"), "--method", "bicubic"]) == 0
    argv = ["score", "--bench", f"div2k-val={bench}", "--results", str(tmp_path / "results"), "--methods", "bicubic",
            "--metrics", "PSNR", "-o", str(tmp_path / "report")]  # fmt: skip

    def psnr():
        with (tmp_path / "report" / "div2k-val" / "bicubic.csv").open() as handle:
            return {row["name"]: float(row["PSNR"]) for row in csv.DictReader(handle)}

    assert main(argv) == 0
    before = psnr()
    changed = sorted(before)[0]
    Image.open(bench / "hq" / f"{changed}.png").save(results / "bicubic" / f"{changed}.png")  # now a perfect result
    assert main(argv) == 0
    after = psnr()
    assert after[changed] > before[changed] + 10 and after[changed] > 60
    assert {k: v for k, v in after.items() if k != changed} == {k: v for k, v in before.items() if k != changed}


def test_restore_records_its_settings_and_never_mixes_two(div2k_like, tmp_path, capsys):
    import json

    bench = tmp_path / "bench"
    assert (
        main(["build", "div2k-val", "--source", str(div2k_like), "--count", "1", "--crop", "64", "-o", str(bench)])
        == 0
    )
    out = tmp_path / "results" / "b" / "fluxir"
    argv = ["restore", str(bench), "-o", str(out), "--method", "fluxir", "--tiny", "--steps", "1"]
    assert main([*argv, "--preset", "paper001"]) == 0
    settings = json.loads((out / "restore_settings.json").read_text())
    assert (
        settings["restoration_weight"] == 0.0 and settings["color_fix"] == "none" and settings["preset"] == "paper001"
    )
    assert main(argv) == 2  # the default preset into the same folder: refused, not topped up
    assert "restored with other settings" in capsys.readouterr().err
    report = tmp_path / "report"
    assert main(["score", "--bench", f"b={bench}", "--results", str(tmp_path / "results"), "--methods", "fluxir",
                 "--metrics", "PSNR", "-o", str(report)]) == 0  # fmt: skip
    assert "preset=paper001" in (report / "table.md").read_text()


def test_restore_refuses_a_folder_of_another_model_at_the_same_path(div2k_like, tmp_path, capsys):
    from fluxir_hub.testing import tiny_pipeline

    bench, model, out = tmp_path / "bench", tmp_path / "model", tmp_path / "results" / "fluxir"
    assert (
        main(["build", "div2k-val", "--source", str(div2k_like), "--count", "1", "--crop", "64", "-o", str(bench)])
        == 0
    )
    pipe = tiny_pipeline()
    pipe.save_pretrained(model)
    argv = ["restore", str(bench), "-o", str(out), "--method", "fluxir", "--model", str(model), "--steps", "1"]
    assert main(argv) == 0
    assert main(argv) == 0  # the same model: nothing to redo
    pipe.adapter.register_to_config(sampling_defaults={"restoration_weight": 0.2})
    pipe.save_pretrained(model)  # the same folder, new defaults: the stored results no longer describe it
    assert main(argv) == 2
    assert "sampling_defaults" in capsys.readouterr().err
    with torch.no_grad():
        next(pipe.adapter.parameters()).add_(1.0)
    pipe.adapter.register_to_config(sampling_defaults={})
    pipe.save_pretrained(model)  # new weights, defaults as at first
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "adapter_sha256" in err and "sampling_defaults" not in err


def test_restore_split_over_two_processes_writes_what_one_does(div2k_like, tmp_path):
    import hashlib
    import os
    import subprocess
    import sys

    bench = tmp_path / "bench"
    assert (
        main(["build", "div2k-val", "--source", str(div2k_like), "--count", "3", "--crop", "64", "-o", str(bench)])
        == 0
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    restore = ["-m", "fluxir_hub.cli.evaluate", "restore", str(bench), "--method", "fluxir", "--tiny", "--steps", "2"]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]  # fmt: skip
    runs = {"one": [sys.executable], "two": launch}
    for name, prefix in runs.items():
        result = subprocess.run([*prefix, *restore, "-o", str(tmp_path / name)], env=env, capture_output=True, text=True,
                                timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    assert "[process 1] restore: wrote 1 image(s)" in result.stdout and "[process 0] restore: wrote 2" in result.stdout

    def digest(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}

    assert digest(tmp_path / "two") == digest(tmp_path / "one") and len(digest(tmp_path / "one")) == 4
