from pathlib import Path

from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_training_config_loads_with_the_papers_numbers():
    config = TrainConfig.from_file(ROOT / "configs" / "fluxir_paper.yaml")
    assert config.learning_rate == 1e-5 and config.timestep_eps == 0.05 and config.rank == 32
    assert config.crop_pairs == [(1024, 768), (768, 768), (512, 768)] and config.crop_mode == "center"
    assert config.train_batch_size * config.gradient_accumulation_steps * 4 == 64  # 4 GPUs, paper's batch 64
    config.validate()
