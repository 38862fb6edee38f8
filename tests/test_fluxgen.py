import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datasets import load_dataset
from huggingface_hub import snapshot_download
from PIL import Image

from dataset_builder.cli import main
from dataset_builder.generate import read_image_metadata
from dataset_builder.io_utils import BuildLayout
from dataset_builder.select import compute_selection
from fluxir_hub.testing import make_hub_cache

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("fluxgen") / "build"
    assert main(["run", "-o", str(out), "--tiny"]) == 0
    return out


def test_run_tiny_end_to_end_loads_with_load_dataset(tiny_build):
    selection = json.loads((tiny_build / "selection.json").read_text())
    kept = selection["counts"]["kept"]
    assert selection["counts"]["scored"] == 8 and 0 < kept < 8
    ds = load_dataset(str(tiny_build / "dataset"))
    assert set(ds) == {"train", "validation"}
    assert len(ds["train"]) + len(ds["validation"]) == kept
    row = ds["train"][0]
    assert set(row) == {"id", "seed", "hq", "lq", "prompt", "task", "generator_model", "generator_revision",
                        "scores", "degradation"}  # fmt: skip
    assert row["task"] == "sr"
    assert row["hq"].size == (128, 96) and row["lq"].size == (32, 24)
    assert set(row["scores"]) == {"piqe", "entropy", "musiq"}
    assert row["generator_model"] == "tiny" and row["prompt"] == ""
    assert json.loads(row["degradation"])["preset"] == "seesr"
    assert sorted(list(ds["train"]["id"]) + list(ds["validation"]["id"])) == selection["kept"]

    card = (tiny_build / "dataset" / "README.md").read_text()
    assert "after unsharp masking" in card  # seesr stores the sharpened target, as SeeSR trains
    generated = Image.open(BuildLayout(tiny_build).image_path(int(row["id"]))).convert("RGB")
    assert row["hq"].convert("RGB").tobytes() != generated.tobytes()
    assert json.loads(row["degradation"])["target"] == "usm"
    assert "More information needed" not in card
    assert "| kept | " + str(kept) in card and "piqe" in card and "Apache-2.0" in card


def test_dataset_loads_by_repo_id_from_offline_hub_cache(tiny_build, tmp_path):
    make_hub_cache(tiny_build / "dataset", "fluxir/tiny-pairs", tmp_path / "hub", repo_type="dataset")
    folder = snapshot_download("fluxir/tiny-pairs", repo_type="dataset", cache_dir=tmp_path / "hub")
    ds = load_dataset(folder, split="validation")
    assert ds[0]["lq"].size == (32, 24)


def test_lq_in_the_dataset_replays_from_hq_and_record(tiny_build):
    from dataset_builder import apply_degradation

    row = load_dataset(str(tiny_build / "dataset"), split="train")[0]
    replay = apply_degradation(row["hq"].convert("RGB"), json.loads(row["degradation"]))
    assert replay.tobytes() == row["lq"].convert("RGB").tobytes()


def test_rerun_is_idempotent(tiny_build, capsys):
    before = sorted(p.stat().st_mtime_ns for p in (tiny_build / "images").rglob("*.png"))
    assert main(["run", "-o", str(tiny_build), "--tiny"]) == 0
    out = capsys.readouterr().out
    assert "wrote 0 image(s)" in out and "scored 0 image(s)" in out and "wrote 0 LQ image(s)" in out
    assert sorted(p.stat().st_mtime_ns for p in (tiny_build / "images").rglob("*.png")) == before


def test_selection_drops_exactly_the_images_below_any_quantile():
    scores = {f"{i:08d}": {"a": float(i), "b": float(100 - i), "low": float(i % 10)} for i in range(100)}
    result = compute_selection(scores, 0.05, lower_better={"low": True})
    # a: keep >= q05(0..99) = 4.95 -> drops 0..4; b = 100 - i: keep >= q05(1..100) = 5.95 -> drops i = 95..99;
    # low is lower-better: keep <= q95(0..9 repeated) = 9 -> drops none
    assert result["thresholds"]["a"] == pytest.approx(4.95) and result["thresholds"]["low"] == pytest.approx(9)
    dropped = sorted(int(i) for i in result["dropped"])
    assert dropped == [0, 1, 2, 3, 4, 95, 96, 97, 98, 99]
    assert result["dropped"]["00000000"] == ["a"] and result["dropped"]["00000099"] == ["b"]
    assert len(result["kept"]) == 90


def test_killed_generation_resumes_without_duplicates(tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "dataset_builder.cli", "generate", "-o", str(out), "--tiny", "--seed-end", "400"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    layout = BuildLayout(out)
    deadline = time.time() + 120
    while len(layout.generated_seeds()) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(layout.generated_seeds())
    assert 5 <= partial < 400, "the run should have been killed mid-way"
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "400"]) == 0
    seeds = layout.generated_seeds()
    assert seeds == list(range(400))
    assert not list(out.rglob("*.tmp"))
    for seed in seeds[::37]:
        with Image.open(layout.image_path(seed)) as image:
            image.load()
        assert read_image_metadata(layout.image_path(seed))["seed"] == seed


def _launch(out, *args, processes: int = 2, stage: str = "run"):
    """`fluxgen` under `accelerate launch` with `processes` CPU ranks (gloo; `--multi_gpu` on a GPU-less machine),
    or as one plain process; one intra-op thread each, as accelerate sets (CPU kernels pick their reduction order
    by thread count, so numbers are compared at equal threads)."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "dataset_builder.cli"]  # fmt: skip
    cmd = (launch if processes > 1 else [sys.executable, "-m", "dataset_builder.cli"]) + [stage, "-o", str(out), *args]
    result = subprocess.run(cmd, env={**_env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _build_digest(out) -> dict[str, str]:
    """Every file of a build by content (score parts merged: their names say when and by whom they were written)."""
    import hashlib

    from dataset_builder.score import load_scores

    files = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith("part-")
    }
    files["scores"] = json.dumps(load_scores(BuildLayout(out))[0], sort_keys=True)
    return files


FLUXGEN_SCALE_ARGS = [
    "--tiny",
    "--seed-end",
    "12",
    "--batch-size",
    "2",
    "--score-batch-size",
    "4",
    "--rows-per-shard",
    "1",
]


def test_every_stage_runs_on_every_process_and_the_dataset_is_the_same(tmp_path):
    one = _launch(tmp_path / "one", *FLUXGEN_SCALE_ARGS, processes=1)
    two = _launch(tmp_path / "two", *FLUXGEN_SCALE_ARGS, processes=2)
    import re

    for stage, counts in (("generate: wrote", [6, 6]), ("score: scored", [4, 8]), ("degrade: wrote", [2, 3])):
        said = re.findall(rf"\[process (\d)\] {stage} (\d+)", two)  # lines of two processes may interleave
        assert sorted(rank for rank, _ in said) == ["0", "1"], two  # each process did its share
        assert sorted(int(n) for _, n in said) == counts, two
    assert "kept 5" in one and len(list((tmp_path / "two" / "dataset" / "data").glob("*.parquet"))) == 5
    assert _build_digest(tmp_path / "two") == _build_digest(tmp_path / "one")
    # A build started with two processes and finished with one (another world size) is the same build again.
    _launch(tmp_path / "resumed", *FLUXGEN_SCALE_ARGS, processes=2, stage="generate")
    _launch(tmp_path / "resumed", *FLUXGEN_SCALE_ARGS, processes=1)
    assert _build_digest(tmp_path / "resumed") == _build_digest(tmp_path / "one")
    # Two "nodes" sharing one folder (torchrun forms the group on this machine; a cluster uses accelerate launch
    # --num_machines 2 --machine_rank i, configs/accelerate/multi_node.yaml).
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
                "--master_addr", "127.0.0.1", "--master_port", str(port)]  # fmt: skip
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    nodes = [
        subprocess.Popen(
            [
                *torchrun,
                "--node_rank",
                str(rank),
                "-m",
                "dataset_builder.cli",
                "run",
                "-o",
                str(tmp_path / "nodes"),
                *FLUXGEN_SCALE_ARGS,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    outputs = [node.communicate(timeout=300) for node in nodes]
    assert all(node.returncode == 0 for node in nodes), [err[-2000:] for _, err in outputs]
    assert "[process 1] score: scored 4" in outputs[1][0]
    assert _build_digest(tmp_path / "nodes") == _build_digest(tmp_path / "one")


def test_a_folder_in_use_by_another_run_is_refused(tmp_path, capsys):
    import os

    from dataset_builder.io_utils import LOCK_NAME

    out = tmp_path / "busy"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": "now"}))
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "2"]) == 2
    assert "is in use by another fluxgen run (process 1 on elsewhere" in capsys.readouterr().err
    assert not (out / "images").exists()
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": "x"}))
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "2"]) == 0  # a killed run's lock: taken over
    assert not (out / LOCK_NAME).exists() and os.listdir(out / "images")  # released at the end


def test_unreadable_image_is_set_aside_then_regenerated_and_scored(tmp_path, capsys):
    out = tmp_path / "corrupt"
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "6"]) == 0
    layout = BuildLayout(out)
    layout.image_path(2).write_bytes(b"\x89PNG\r\n\x1a\n broken")
    assert main(["score", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "Unreadable image" in captured.out + captured.err and "00000002.png.corrupt" in captured.out + captured.err
    assert main(["select", "-o", str(out)]) == 0
    selection = json.loads(layout.selection_path.read_text())
    assert selection["corrupt"] == ["00000002"] and selection["counts"]["scored"] == 5
    # The next run makes the image again and scores it: it is not excluded forever.
    assert main(["run", "-o", str(out), "--tiny", "--seed-end", "6"]) == 0
    assert "wrote 1 image(s)" in capsys.readouterr().out
    selection = json.loads(layout.selection_path.read_text())
    assert selection["corrupt"] == [] and selection["counts"]["scored"] == 6


def test_damaged_lq_and_hq_are_named_and_redone(tmp_path, capsys):
    out = tmp_path / "damaged"
    assert main(["run", "-o", str(out), "--tiny", "--seed-end", "6"]) == 0
    layout = BuildLayout(out)
    kept = [int(i) for i in json.loads(layout.selection_path.read_text())["kept"]]
    lq = layout.lq_path(kept[0])
    lq.write_bytes(lq.read_bytes()[:60])  # truncated LQ
    capsys.readouterr()
    assert main(["export", "-o", str(out)]) == 2  # never packed into the parquet
    assert f"{lq} is damaged" in capsys.readouterr().err
    assert main(["degrade", "-o", str(out)]) == 0  # found and remade
    assert main(["export", "-o", str(out)]) == 0
    rows = load_dataset(str(out / "dataset"), split="train")
    assert all(row["lq"].size == (32, 24) for row in rows)

    hq = layout.image_path(kept[1])
    hq.write_bytes(hq.read_bytes()[:100])  # a kept HQ damaged after selection
    layout.lq_path(kept[1]).unlink()
    assert main(["degrade", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(hq) in err and "Rerun `fluxgen run`" in err
    assert main(["run", "-o", str(out), "--tiny", "--seed-end", "6"]) == 0  # every rerun recovers, none crashes
    assert (
        layout.lq_path(kept[1]).exists()
        or str(kept[1]).zfill(8) not in json.loads(layout.selection_path.read_text())["kept"]
    )


def test_each_build_loads_its_own_rows_whatever_the_cache_holds(tmp_path):
    counts = {}
    for name, seed_end in (("first", 6), ("second", 4)):
        out = tmp_path / name
        assert main(["run", "-o", str(out), "--tiny", "--seed-end", str(seed_end)]) == 0
        counts[name] = json.loads((out / "selection.json").read_text())["counts"]["kept"]
    for name in ("first", "second"):
        ds = load_dataset(str(tmp_path / name / "dataset"))
        assert sum(len(split) for split in ds.values()) == counts[name]
    # Rebuilt in place with other rows: the same path loads the new rows.
    assert main(["run", "-o", str(tmp_path / "first"), "--tiny", "--seed-end", "3", "--overwrite"]) == 0
    kept = json.loads((tmp_path / "first" / "selection.json").read_text())["kept"]
    ds = load_dataset(str(tmp_path / "first" / "dataset"))
    assert sorted(i for split in ds.values() for i in split["id"]) == kept


def test_card_describes_exactly_what_was_exported(tmp_path):
    out = tmp_path / "card"
    assert main(["run", "-o", str(out), "--tiny", "--seed-end", "6"]) == 0
    # Smaller range, another preset and an added metric, continued in the same folder.
    argv = ["run", "-o", str(out), "--tiny", "--seed-end", "4", "--preset", "mild", "--resume",
            "--metrics", "piqe,entropy,musiq,wadiqam_nr"]  # fmt: skip
    assert main(argv) == 0
    ds = load_dataset(str(out / "dataset"))
    rows = [row for split in ds.values() for row in split]
    assert rows and all(int(row["id"]) < 4 for row in rows)
    assert {json.loads(row["degradation"])["preset"] for row in rows} == {"mild"}
    assert all(set(row["scores"]) == {"piqe", "entropy", "musiq", "wadiqam_nr"} for row in rows)
    card = (out / "dataset" / "README.md").read_text()
    assert "preset `mild`" in card and "`seesr`" not in card and "`wadiqam_nr`" in card
    seeds = sorted(int(row["id"]) for row in rows)
    assert f"exported seeds {seeds[0]} to {seeds[-1]}" in card
    assert "configs:" not in card


def test_push_makes_the_right_hub_calls(tiny_build, monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(("init", token))

        def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, repo_type, private, exist_ok))
            return f"https://hub.example/datasets/{repo_id}"

        def upload_folder(self, repo_id, folder_path, repo_type=None, commit_message=None):
            files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
            calls.append(("upload_folder", repo_id, repo_type, files))

        def upload_large_folder(self, **kwargs):
            calls.append(("upload_large_folder", kwargs))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert main(["push", "-o", str(tiny_build), "--repo-id", "me/pairs", "--private"]) == 0
    assert calls[1] == ("create_repo", "me/pairs", "dataset", True, True)
    name, repo, repo_type, files = calls[2]
    assert (name, repo, repo_type) == ("upload_folder", "me/pairs", "dataset")
    assert "README.md" in files and any(f.startswith("data/train-") and f.endswith(".parquet") for f in files)


def test_bad_input_gives_clear_errors(tiny_build, tmp_path, capsys):
    def error(argv):
        assert main(argv) == 2
        return capsys.readouterr().err

    assert "holds no FluxGen build" in error(["score", "-o", str(tmp_path / "nothing")])
    assert "empty or reversed" in error(["generate", "-o", str(tmp_path / "x"), "--tiny", "--seed-start", "5",
                                          "--seed-end", "5"])  # fmt: skip
    assert "invalid choice: 'fancy'" in error(["generate", "-o", str(tmp_path / "y"), "--tiny",
                                                            "--preset", "fancy"])  # fmt: skip
    assert "Unknown pyiqa metric" in error(["generate", "-o", str(tmp_path / "z"), "--tiny", "--metrics", "nosuch"])
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    assert "Cannot write to the output folder" in error(["generate", "-o", str(blocker / "sub"), "--tiny"])
    message = error(["generate", "-o", str(tiny_build), "--tiny", "--steps", "3", "--width", "64"])
    assert "generate.num_inference_steps: 2 -> 3" in message and "generate.width: 128 -> 64" in message
    assert "--resume" in message
    # nothing already written was lost by the refusal
    assert len(BuildLayout(tiny_build).generated_seeds()) == 8


def test_resume_with_a_larger_seed_range_and_overwrite(tmp_path):
    out = tmp_path / "grow"
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "3"]) == 0
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "5"]) == 0  # seed_end may grow freely
    assert BuildLayout(out).generated_seeds() == list(range(5))
    assert main(["generate", "-o", str(out), "--tiny", "--steps", "3", "--resume"]) == 0
    assert json.loads((out / "fluxgen_config.json").read_text())["generate"]["num_inference_steps"] == 3
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "2", "--overwrite"]) == 0
    assert BuildLayout(out).generated_seeds() == [0, 1]


def test_prompts_file_assigns_prompts_by_seed(tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red car\n\na cat on a sofa\n")  # the blank line is skipped
    out = tmp_path / "prompted"
    assert main(["generate", "-o", str(out), "--tiny", "--seed-end", "4", "--prompts", str(prompts)]) == 0
    layout = BuildLayout(out)
    got = [read_image_metadata(layout.image_path(seed))["prompt"] for seed in range(4)]
    assert got == ["a red car", "a cat on a sofa", "a red car", "a cat on a sofa"]
    assert main(["generate", "-o", str(tmp_path / "x"), "--tiny", "--prompts", str(tmp_path / "missing.txt")]) == 2


def test_shards_by_bytes_and_card_metadata_for_any_size():
    from dataset_builder.export import plan_shards
    from fluxir_hub.licences import card_licence, size_category

    assert plan_shards([100] * 10, max_bytes=250, max_rows=100) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert plan_shards([600, 100, 100], max_bytes=500, max_rows=100) == [(0, 1), (1, 3)]  # one big row alone
    assert plan_shards([1] * 5, max_bytes=10**9, max_rows=2) == [(0, 2), (2, 4), (4, 5)]
    assert [size_category(n) for n in (5, 5_000, 50_000, 350_000, 2_000_000, 50_000_000)] == [
        "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M"]  # fmt: skip
    flux = card_licence(["black-forest-labs/FLUX.1-dev"])
    assert flux["license"] == "other" and flux["license_name"] == "flux-1-dev-non-commercial-license"
    assert card_licence(["black-forest-labs/FLUX.1-schnell", "tiny"]) == {"license": "apache-2.0"}


def test_random_stand_in_metrics_are_the_same_in_every_process():
    # A resumed (or another rank's) scoring builds the MUSIQ stand-in again: it must score as the first one did.
    import torch

    from fluxir_hub.evaluation.metrics import create_pyiqa_metric

    torch.manual_seed(1)
    first = create_pyiqa_metric("musiq", pretrained=False)
    state = torch.random.get_rng_state()
    torch.manual_seed(2)
    second = create_pyiqa_metric("musiq", pretrained=False)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    torch.manual_seed(1)
    create_pyiqa_metric("musiq", pretrained=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is left as it was


def test_a_killed_rank_stops_the_run_naming_it_and_the_folder_resumes(tmp_path):
    import psutil

    out = tmp_path / "killed-rank"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "dataset_builder.cli",
              "run", "-o", str(out), "--tiny", "--seed-end", "150"]  # fmt: skip
    launcher = subprocess.Popen(launch, env={**_env(), "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 120
    victim = None
    while victim is None and time.time() < deadline:
        time.sleep(0.5)
        if len(list((out / "images").rglob("*.png"))) < 4:  # both ranks are generating
            continue
        for child in psutil.Process(launcher.pid).children(recursive=True):
            try:
                if "dataset_builder.cli" in " ".join(child.cmdline()) and child.environ().get("RANK") == "1":
                    victim = child
            except psutil.Error:
                continue
    assert victim is not None, "rank 1 never started"
    victim.kill()
    killed_at = time.time()
    output, _ = launcher.communicate(timeout=120)
    assert launcher.returncode != 0 and time.time() - killed_at < 60  # the other rank did not wait for it
    assert "local_rank: 1" in output and "SIGKILL" in output, output[-2000:]
    # the folder is not left locked by the dead run, and finishes with any number of processes
    assert main(["generate", "-o", str(out)]) == 0
    assert BuildLayout(out).generated_seeds() == list(range(150))


def test_degradation_workers_make_the_same_lqs(tiny_build, tmp_path):
    import hashlib
    import shutil

    from dataset_builder.config import FluxGenConfig
    from dataset_builder.degrade_stage import degrade_images

    def lq_digests(folder):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((folder / "lq").rglob("*.*"))}

    config = FluxGenConfig.load(tiny_build)
    expected = lq_digests(tiny_build)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_build, copy)
    shutil.rmtree(copy / "lq")
    config.degrade.num_workers = 2
    assert degrade_images(copy, config.degrade, show_progress=False) == len(expected) // 3  # LQ, record, target
    assert lq_digests(copy) == expected
    with pytest.raises(ValueError, match="--num-workers"):
        config.degrade.num_workers = 0
        config.degrade.validate()
