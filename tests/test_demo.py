"""The Gradio app: starts without GPU or Hub, serves its API, refuses bad input clearly, renders in Chromium."""

import shutil
import subprocess
import tempfile
import time

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from demo.app import (
    MAX_UPLOAD_BYTES,
    QUEUE_SIZE,
    Restorer,
    ResultFiles,
    build_demo,
    estimate_duration,
    launch_settings,
    load_model,
    request_duration,
    upload_folder,
)

from .helpers import photo

DEFAULTS = {"prompt": "", "upscale": 2, "steps": 2, "seed": 0, "randomize_seed": False, "fidelity": 0.05,
            "color_fix": "wavelet", "use_tts": False, "tts_candidates": 3, "task": "sr"}  # fmt: skip


@pytest.fixture(scope="module")
def app():
    demo = build_demo()
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_settings())
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app.local_url, verbose=False)


def _restore(client, path, **kwargs):
    return client.predict(handle_file(str(path)), *{**DEFAULTS, **kwargs}.values(), api_name="/restore")


def test_falls_back_to_the_mini_model_with_a_banner(monkeypatch):
    monkeypatch.delenv("FLUXIR_ADAPTER", raising=False)
    model = load_model()
    assert model.kind == "mini" and "mini FluxIR" in model.banner and "not FLUX.1" in model.banner
    assert "no FLUXIR_ADAPTER" in model.banner
    monkeypatch.setenv("FLUXIR_ADAPTER", "org/adapter")
    assert "no GPU is available" in load_model().banner
    assert estimate_duration(model, 256, 256, 4, 20, 1) < estimate_duration(model, 256, 256, 4, 20, 4)
    # all seven tasks offline: the all-in-one adapter shipped beside the SR one serves the six others
    assert model.tasks == ["sr", "motion_blur", "low_light", "underwater", "denoise", "raindrop", "desnow"]
    assert model.pipe_for("sr") is model.pipe and model.pipe_for("denoise").adapter.config.task_prompts
    assert model.pipe_for("denoise").text_encoder_2 is not None  # loaded, but the task prompt comes from the cache


def test_api_outputs_have_names(client):
    returns = client.view_api(return_format="dict")["named_endpoints"]["/restore"]["returns"]
    names = [r["label"] for r in returns]
    assert names == ["Before / after", "Full-resolution result (PNG)", "Run info", "Seed"], names


def test_gpu_duration_is_sized_from_the_upload_payload():
    model = load_model()
    folder = upload_folder() / "test-duration"  # only uploads are read, so the test files live where uploads do
    folder.mkdir(parents=True, exist_ok=True)
    small, large = folder / "small.png", folder / "large.png"
    Image.new("RGB", (16, 16)).save(small)
    Image.new("RGB", (256, 256)).save(large)
    minimum = request_duration(model, {"path": str(folder / "missing.png")}, 4, 20, 1)
    assert request_duration(model, {"path": str(small)}, 1, 1, 1) == minimum
    big = request_duration(model, {"path": str(large)}, 4, 50, 8)  # a dict payload, as the click event sends
    assert big > minimum and big == request_duration(model, str(large), 4, 50, 8)  # examples send a path
    assert request_duration(model, {"path": str(large)}, 4, 5000, 8) == minimum  # refused later: no long lease


def test_api_restores_a_task_of_the_all_in_one_adapter(client, tmp_path):
    path = tmp_path / "noisy.png"
    photo("coffee", (32, 32)).save(path)
    (before, after), full, info, _ = _restore(client, path, task="denoise", upscale=1, fidelity=0.05)
    with Image.open(full) as image:
        assert image.size == (32, 32)  # a same-size task
    with pytest.raises(Exception, match="Task must be one of .*desnow"):
        _restore(client, path, task="dehaze")


def test_api_restores_with_and_without_tts(client, tmp_path):
    path = tmp_path / "in.png"
    photo("chelsea", (40, 32)).save(path)
    (before, after), full, info, seed = _restore(client, path)
    with Image.open(full) as image:
        assert image.size == (80, 64)
    assert Image.open(after).size == Image.open(before).size == (80, 64)
    assert "2 transformer evaluations" in info and seed == 0
    _, _, info_tts, _ = _restore(client, path, steps=4, use_tts=True, tts_candidates=3)
    assert "best reward per branching step" in info_tts and "12 transformer evaluations" in info_tts
    _, _, _, new_seed = _restore(client, path, randomize_seed=True)
    assert 0 <= new_seed < 2**31


def test_bad_uploads_get_clear_messages(client, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (700, 700), (10, 20, 30)).save(big)
    with pytest.raises(Exception, match="accepts up to 262,144 pixels"):
        _restore(client, big)
    wide = tmp_path / "wide.png"
    Image.new("RGB", (400, 300), (10, 20, 30)).save(wide)
    with pytest.raises(Exception, match="would make a 1600x1200 image"):
        _restore(client, wide, upscale=4)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(Exception, match="not a usable image"):
        _restore(client, text)


def test_a_burst_waits_in_the_queue_with_its_place_shown_and_the_overflow_is_told_to_retry(app, tmp_path):
    path = tmp_path / "in.png"
    photo("coffee", (32, 32)).save(path)
    # Outputs stay on the server: this test is about the queue. (Identical requests would also produce byte-identical
    # result files, which Gradio caches under one name; downloading them concurrently races in Gradio.)
    client = Client(app.local_url, verbose=False, download_files=False)
    burst = QUEUE_SIZE + 8
    jobs = [client.submit(handle_file(str(path)), *{**DEFAULTS, "steps": 3, "seed": i}.values(), api_name="/restore")
            for i in range(burst)]  # fmt: skip
    ranks = set()
    while not all(job.done() for job in jobs):
        ranks |= {job.status().rank for job in jobs if job.status().rank is not None}
        time.sleep(0.05)
    done, rejected = 0, 0
    for job in jobs:
        try:
            assert "transformer evaluations" in job.result(timeout=300)[2]
            done += 1
        except Exception as err:  # the bounded queue refuses the overflow, saying to retry
            assert "please try again" in str(err).lower(), repr(err)
            rejected += 1
    assert QUEUE_SIZE >= 32 and done + rejected == burst and done >= QUEUE_SIZE
    assert max(ranks) >= 5, ranks  # waiting requests were told their place


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_page_renders_in_headless_chromium(app):
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", app.local_url],
            capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
    for text in ("Low-quality input", "Drop Image Here", "Prompt (optional)", "Test-time scaling", "Before / after", "Restore",
                 "mini FluxIR"):  # fmt: skip
        assert text in dom, text


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_upload_and_restore_click_through_with_playwright(app):
    sync_api = pytest.importorskip("playwright.sync_api")
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / "demo" / "examples" / "chelsea.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],  # fmt: skip
        )
        try:
            page = browser.new_page()
            page.goto(app.local_url)
            page.wait_for_selector("text=Restore")
            page.locator("input[type=file]").first.set_input_files(str(example))
            page.get_by_role("button", name="Restore").click()
            page.wait_for_selector("#run-info :text('transformer evaluations')", timeout=90_000)
            assert "512x512" in page.locator("#run-info").inner_text()  # 128 px example, x4
            # the download link to the full-resolution PNG
            page.wait_for_function("document.body.innerHTML.includes('restored-')", timeout=30_000)
            # An example runs through the same checks (its file sits in Gradio's cache, where uploads go).
            page.reload()
            page.wait_for_selector("text=Restore")
            page.locator("img[src*='chelsea']").first.click()
            page.wait_for_selector("#run-info :text('transformer evaluations')", timeout=90_000)
        finally:
            browser.close()


def _raw_call(app, *data) -> str:
    """Call /restore over plain HTTP with a hand-written payload (gradio_client would upload a local path itself,
    which a hostile client does not do) and return the event stream's text."""
    import httpx

    base = app.local_url.rstrip("/") + "/gradio_api/call/restore"
    event_id = httpx.post(base, json={"data": list(data)}, timeout=30).json()["event_id"]
    return httpx.get(f"{base}/{event_id}", timeout=120).text


def test_restore_reads_only_uploaded_files(tmp_path):
    """The app's own check, whatever Gradio's payload handling does before it."""
    secret = tmp_path / "secret.png"
    photo("astronaut", (32, 32)).save(secret)
    restorer = Restorer(load_model())
    args = list(DEFAULTS.values())
    for target in (secret, str(secret), {"path": str(secret)}, tmp_path / "missing.png", "/etc/hostname", None, 3):
        with pytest.raises(gr.Error, match="Upload an image first"):
            restorer.restore(target, *args)
    inside = upload_folder() / "test-restore"
    inside.mkdir(parents=True, exist_ok=True)
    (inside / "link.png").unlink(missing_ok=True)
    (inside / "link.png").symlink_to(secret)  # a link out of the upload folder is resolved and refused
    with pytest.raises(gr.Error, match="Upload an image first"):
        restorer.restore(str(inside / "link.png"), *args)
    photo("astronaut", (32, 32)).save(inside / "ok.png")
    (_, after), _, info, _ = restorer.restore(str(inside / "ok.png"), *args)
    assert after.size == (64, 64) and "transformer evaluations" in info


def test_api_never_reads_server_files(app, tmp_path):
    secret = tmp_path / "secret.png"  # a real image outside Gradio's upload folder
    photo("astronaut", (32, 32)).save(secret)
    replies = []
    for target in (secret, tmp_path / "missing.png", "/etc/hostname", upload_folder() / ".." / secret.name):
        target = str(target)
        payload = {"path": target, "meta": {"_type": "gradio.FileData"}}
        replies.append(_raw_call(app, payload, *DEFAULTS.values()).replace(target, "<path>"))
        # A plain string path skips Gradio's own file check: the app's check must refuse it by itself.
        replies.append(_raw_call(app, target, *DEFAULTS.values()).replace(target, "<path>"))
    assert all(r.startswith("event: error") for r in replies), replies
    assert "transformer evaluations" not in "".join(replies)
    # Existing and missing files get the same answer: nothing to probe.
    assert replies[0] == replies[2], replies  # secret.png vs missing.png


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"steps": 1500}, "Steps must be from 1 to 50"),
        ({"steps": -3}, "Steps must be from 1 to 50"),
        ({"steps": 2.5}, "Steps must be a whole number"),
        ({"upscale": 0}, "Upscale must be from 1 to 4"),
        ({"upscale": "4"}, "Upscale must be a whole number"),
        ({"use_tts": True, "tts_candidates": 64}, "Candidates must be from 2 to 8"),
        ({"fidelity": "high"}, "Fidelity must be a number"),
        ({"fidelity": 5}, "Fidelity must be from 0 to 0.3"),
        ({"color_fix": "sepia"}, "Colour fix must be one of wavelet, adain, none"),
        ({"seed": -1}, "Seed must be from 0"),
        ({"prompt": "x" * 5000}, "at most 500 are allowed"),
        ({"task": "dehaze"}, "Task must be one of sr, motion_blur, .* for this model"),  # not a task of the model
        ({"task": "../../etc"}, "Task must be one of sr"),
    ],
)
def test_api_enforces_every_limit_with_a_message(client, tmp_path, change, message):
    path = tmp_path / "in.png"
    photo("chelsea", (16, 16)).save(path)
    with pytest.raises(Exception, match=message):
        _restore(client, path, **change)


def test_api_wrong_argument_count_and_oversized_upload_say_why(app, client, tmp_path):
    reply = _raw_call(app, None, "", 2)  # plain HTTP: gradio_client would fill in the missing defaults
    assert reply.startswith("event: error") and "didn't receive enough input values" in reply
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + bytes(MAX_UPLOAD_BYTES))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        _restore(client, big)


def test_result_files_are_swept(tmp_path):
    results = ResultFiles(max_age_s=0)
    first = results.save(photo("coffee", (8, 8)))
    assert first.exists() and first.stat().st_mode & 0o777 != 0o600
    time.sleep(0.01)
    second = results.save(photo("coffee", (8, 8)))
    assert second.exists() and not first.exists() and second != first


def test_a_distilled_adapter_restores_with_its_own_schedule_by_default():
    from demo.app import DemoModel
    from fluxir_hub.testing import tiny_pipeline

    pipe = tiny_pipeline()
    pipe.adapter.register_to_config(distilled_sigmas=[1.0, 0.3])
    model = DemoModel(pipe, "tiny", "", 512 * 512, 1024 * 1024, 0.05)
    assert model.distilled_steps == 2 and model.steps_for_call(2) is None and model.steps_for_call(5) == 5
    assert DemoModel(tiny_pipeline(), "tiny", "", 1, 1, 0.05).steps_for_call(2) == 2
    inside = upload_folder() / "test-distilled"
    inside.mkdir(parents=True, exist_ok=True)
    photo("astronaut", (32, 32)).save(inside / "ok.png")
    (_, after), _, info, _ = Restorer(model).restore(str(inside / "ok.png"), *{**DEFAULTS, "steps": 2}.values())
    assert after.size == (64, 64) and "2 transformer evaluations" in info


def test_api_defaults_every_setting_and_answers_a_non_file_image_in_words(client, tmp_path):
    parameters = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/restore"]["parameters"]
    assert [p["parameter_name"] for p in parameters if not p["parameter_has_default"]] == ["image_input"]
    for value in (5, "x", [1, 2]):
        with pytest.raises(Exception, match="Upload an image first: the image must be sent as a file") as err:
            client.predict(value, api_name="/restore")
        assert "pydantic" not in str(err.value)


def test_a_huge_image_is_refused_from_its_header_and_limits_read_plainly(monkeypatch):
    import demo.app as app_module
    from demo.app import MAX_SEED, DemoModel, RestoreRequest, _number
    from fluxir_hub.testing import tiny_pipeline

    inside = upload_folder() / "test-huge"
    inside.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (900, 700)).save(inside / "big.png")
    restorer = Restorer(DemoModel(tiny_pipeline(), "tiny", "", 512 * 512, 1024 * 1024, 0.05))

    def never(*args, **kwargs):
        raise AssertionError("the image was decoded before its size was checked")

    monkeypatch.setattr(app_module, "load_image", never)
    request = RestoreRequest.parse(str(inside / "big.png"), "", 2, 2, 0, False, 0.05, "wavelet", False, 2)
    with pytest.raises(gr.Error, match="The image is 900x700; this demo accepts up to 262,144 pixels"):
        restorer.load_input(request)
    with pytest.raises(gr.Error, match=f"Seed must be from 0 to {MAX_SEED}, got -1"):
        _number("Seed", -1, 0, MAX_SEED, integer=True)
