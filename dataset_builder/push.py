"""Stage 6: publish the exported folder as a Hub `datasets` repo."""

from __future__ import annotations

from pathlib import Path

LARGE_FOLDER_FILES = 200  # above this many files, use upload_large_folder (resumable, multi-commit)


def push_dataset(dataset_dir, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create (if needed) the dataset repo `repo_id` and upload `dataset_dir`; returns the repo URL."""
    from huggingface_hub import HfApi

    dataset_dir = Path(dataset_dir)
    if not (dataset_dir / "README.md").exists():
        raise ValueError(f"{dataset_dir} has no README.md dataset card; run `fluxgen export` first.")
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    n_files = sum(1 for p in dataset_dir.rglob("*") if p.is_file())
    if n_files > LARGE_FOLDER_FILES:
        api.upload_large_folder(repo_id=repo_id, folder_path=dataset_dir, repo_type="dataset", private=private)
    else:
        api.upload_folder(
            repo_id=repo_id, folder_path=dataset_dir, repo_type="dataset", commit_message="Upload FluxGen dataset"
        )
    return str(url)
