from pathlib import Path

from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_training_config_loads_with_the_papers_numbers():
    config = TrainConfig.from_file(ROOT / "configs" / "fluxir_paper.yaml")
    assert config.learning_rate == 1e-5 and config.timestep_eps == 0.05 and config.rank == 32
    assert config.crop_pairs == [(1024, 768), (768, 768), (512, 768)] and config.crop_mode == "center"
    assert config.train_batch_size * config.gradient_accumulation_steps * 4 == 64  # 4 GPUs, paper's batch 64
    config.validate()


def test_sections_hold_the_settings_under_their_flat_names():
    from training.config import SECTIONS, OptimConfig, RLConfig

    config = TrainConfig(learning_rate=3e-4, rl_alpha=[1.0, 1.5], dataset="org/pairs")
    assert isinstance(config.optim, OptimConfig) and isinstance(config.rl, RLConfig)
    assert config.optim.learning_rate == config.learning_rate == 3e-4 and config.rl.rl_alpha == [1.0, 1.5]
    config.learning_rate = 1e-5  # a flat write lands in its section
    assert config.optim.learning_rate == 1e-5
    names = [f for cls in SECTIONS.values() for f in cls.__dataclass_fields__]
    assert len(names) == len(set(names)) == len(config.to_dict())  # every flat name in exactly one section
    nested = config.to_nested_dict()
    assert nested["optim"]["learning_rate"] == 1e-5 and TrainConfig.from_dict(nested) == config
    try:
        TrainConfig(learnig_rate=1.0)
    except TypeError as err:
        assert "learnig_rate" in str(err)
    else:
        raise AssertionError("an unknown setting was accepted")


def test_each_section_checks_its_own_values_and_all_problems_come_at_once():
    config = TrainConfig(
        dataset="x", learning_rate=-1.0, rl_alpha=[0.5, 2.0], crop_mode="middle", conditioning_options={"rank": 0}
    )
    assert config.optim.problems() == ["`learning_rate` must be a finite, non-negative number, got -1.0."]
    assert config.rl.problems() == ["`rl_alpha` must be a range [low, high) with 1 <= low < high, got [0.5, 2.0]."]
    assert config.data.problems() == ["`crop_mode` must be 'random' or 'center', got 'middle'."]
    assert config.model.problems() == ["`rank` must be a positive integer, got 0."]
    try:
        config.validate()
    except ValueError as err:
        assert str(err).startswith("4 problems in the training configuration:")
    else:
        raise AssertionError("an invalid configuration passed")


def test_conditioning_options_are_the_kinds_own_and_the_old_flat_flags_still_set_them(tmp_path, caplog):
    import json

    ummf = TrainConfig(dataset="x", conditioning="ummf", conditioning_options={"lora_rank": 8})
    assert ummf.model.component_options() == {"mode": "sequence", "lora_rank": 8}  # fixed + the kind's options
    # The flat flags of earlier versions, as a command line or a saved train_config.json (every one of them) held them
    old = {**TrainConfig(dataset="x").to_dict(), "conditioning": "ummf", "rank": 32, "ummf_lora_rank": 8}
    old.pop("conditioning_options")
    (tmp_path / "train_config.json").write_text(json.dumps({**old, "dra_adapter_dim": 320}))
    loaded = TrainConfig.from_file(tmp_path / "train_config.json")
    assert loaded.conditioning_options == {"lora_rank": 8} and loaded.ummf_lora_rank == 8 and loaded.rank == 32
    assert loaded.differences(ummf) == [] and loaded.problems() == []  # a resume across the change is allowed
    # A default given explicitly is the same run as one left unset; another value is a difference
    assert TrainConfig(dataset="x", conditioning_options={"rank": 32}).differences(TrainConfig(dataset="x")) == []
    assert TrainConfig(dataset="x", rank=8).differences(TrainConfig(dataset="x")) == [
        "conditioning_options: {'rank': 8} -> {'rank': 32}"
    ]
    loaded.ummf_lora_rank = 4  # an attribute write of older code lands in the options too
    assert loaded.conditioning_options == {"lora_rank": 4}
    # DRA's LoRA took the shared `lora_rank`
    dra = TrainConfig(dataset="x", conditioning="dra", lora_rank=8, dra_adapter_dim=16)
    assert dra.model.component_options() == {"adapter_dim": 16, "lora_rank": 8}
    # Each problem named: an option the kind lacks, a wrong type, a value out of range; a flag of another kind
    assert TrainConfig(dataset="x", conditioning_options={"lora_rank": 8}).problems() == [
        "`conditioning_options` ['lora_rank'] are not options of fluxir; its options: rank (default 32)."
    ]
    assert TrainConfig(dataset="x", conditioning_options={"rank": "big"}).problems() == [
        "`conditioning_options` rank must be an integer, got 'big'."
    ]
    assert TrainConfig(dataset="x", conditioning="dra", gradient_checkpointing=False,
                       conditioning_options={"adapter_dim": 0}).problems() == [
        "`adapter_dim` must be a positive integer, got 0."
    ]  # fmt: skip
    with caplog.at_level("WARNING", logger="training.config"):
        other = TrainConfig(dataset="x", conditioning="ummf", rank=8)  # ignored, as before, but said
    assert other.conditioning_options == {} and other.problems() == []
    assert "`rank` sets an option of `--conditioning fluxir`, not of ummf: ignored" in caplog.text


def test_a_configuration_saved_before_the_newer_settings_still_loads(tmp_path):
    """`train_config.json` of earlier versions: flat, without the settings added since (they take their defaults)."""
    import json

    saved = TrainConfig(dataset="x", learning_rate=2e-5).to_dict()
    for newer in ("rl_loss_form", "distill_distance", "distill_start_lq_weight"):
        saved.pop(newer)
    saved["distill_gt_weight"] = 300.0  # the old default was a number
    (tmp_path / "train_config.json").write_text(json.dumps(saved))
    loaded = TrainConfig.from_file(tmp_path / "train_config.json")
    assert loaded.learning_rate == 2e-5 and loaded.rl_loss_form == "one-step" and loaded.distill_gt_weight == 300.0
    loaded.validate()


def test_shipped_accelerate_configs_load_as_accelerate_reads_them():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    expected = {"single_gpu": (DistributedType.NO, 1, 1), "ddp": (DistributedType.MULTI_GPU, 4, 1),
                "multi_node": (DistributedType.MULTI_GPU, 16, 2)}  # fmt: skip
    found = {p.stem for p in (ROOT / "configs" / "accelerate").glob("*.yaml")}
    assert found == set(expected)
    for name, (kind, processes, machines) in expected.items():
        config = load_config_from_file(str(ROOT / "configs" / "accelerate" / f"{name}.yaml"))
        assert (config.distributed_type, config.num_processes, config.num_machines) == (kind, processes, machines)
        assert config.mixed_precision == "bf16"
