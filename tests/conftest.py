"""Test setup: never reach the Hub (each failed lookup costs ~20 s), keep torch single-threaded and seeded."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
# A fresh datasets cache per run: tmp folders are reused across pytest runs, and a stale cache entry for a reused
# path would hand a test last run's data.
os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="hf-datasets-")
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny():
    """Tiny FLUX components, built once per session (tests must not modify them in place)."""
    from fluxir_hub.testing import tiny_components

    return tiny_components()


@pytest.fixture
def tiny_pipe():
    from fluxir_hub.testing import tiny_pipeline

    return tiny_pipeline()


def pytest_collection_modifyitems(config, items):
    # `slow` and `gpu` tests run only when asked for with -m.
    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="slow/gpu test: run with -m slow or -m gpu")
    for item in items:
        if "slow" in item.keywords or "gpu" in item.keywords:
            item.add_marker(skip)
