"""Few-step schedules and the distill stage (paper 002 §5) on the tiny stack."""

import json

import numpy as np
import pytest
import torch

from fluxir_hub import FluxIRAdapter
from fluxir_hub.schedules import (
    cheapest_schedule,
    euler_trajectory,
    grid_indices,
    jump_costs,
    schedule_cost,
    shifted_sigmas,
    uniform_sigmas,
)
from fluxir_hub.testing import tiny_pipeline
from training.config import TrainConfig
from training.trainer import Trainer

from .helpers import gen, make_pairs_folder, photo


def test_jump_cost_is_zero_on_straight_trajectories_and_grows_with_curvature():
    sigmas = torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0])
    x0, direction = torch.randn(2, 8, 4), torch.randn(2, 8, 4)
    states, velocities = euler_trajectory(lambda x, s: direction, x0, sigmas)  # constant velocity: a straight line
    assert np.allclose(np.triu(jump_costs(states, velocities, sigmas), 1), 0, atol=1e-6)
    states, velocities = euler_trajectory(lambda x, s: direction * (1 + 4 * s), x0, sigmas)  # speed changes with s
    cost = jump_costs(states, velocities, sigmas)
    assert np.allclose(np.diag(cost, 1), 0, atol=1e-6)  # one teacher step is exact
    assert cost[0, 2] > 0 and cost[0, 4] > cost[0, 2] and np.isinf(cost[2, 1])


def test_cheapest_schedule_finds_the_least_summed_cost():
    rng = np.random.default_rng(0)
    n = 7
    cost = np.triu(rng.uniform(0.1, 1.0, (n, n)), 1)
    cost[np.tril_indices(n)] = np.inf
    for k in (1, 2, 3, 6):
        best = cheapest_schedule(cost, k)
        assert best[0] == 0 and best[-1] == n - 1 and len(best) == k + 1 and best == sorted(set(best))
        # brute force over every K-jump path
        from itertools import combinations

        brute = min(schedule_cost(cost, [0, *mid, n - 1]) for mid in combinations(range(1, n - 1), k - 1))
        assert schedule_cost(cost, best) == pytest.approx(brute)
    with pytest.raises(ValueError, match="from 1 to 6"):
        cheapest_schedule(cost, 7)


def test_schedules_on_the_grid_and_the_resolution_shift():
    assert uniform_sigmas(4) == [1.0, 0.75, 0.5, 0.25]
    assert grid_indices([1.0, 0.5], uniform_sigmas(20)) == [0, 10, 20]
    with pytest.raises(ValueError, match="not on the teacher"):
        grid_indices([1.0, 0.6667], uniform_sigmas(20))
    pipe = tiny_pipeline()
    low, high = (
        shifted_sigmas([1.0, 0.5], 64, pipe.scheduler.config),
        shifted_sigmas([1.0, 0.5], 4096, pipe.scheduler.config),
    )
    assert low[0] == high[0] == 1 and low[-1] == high[-1] == 0 and high[1] > low[1]  # more tokens, later steps


def test_pipeline_uses_a_distilled_adapters_schedule_and_warns_for_other_counts(caplog):
    pipe = tiny_pipeline()
    lq = photo(size=(16, 16))
    explicit = pipe(lq, sigmas=[1.0, 0.3], generator=gen(), output_type="pt", return_dict=False)
    pipe.adapter.register_to_config(distilled_sigmas=[1.0, 0.3])
    implied = pipe(lq, generator=gen(), output_type="pt", return_dict=False)
    assert implied[1] == 2  # two model calls
    torch.testing.assert_close(implied[0], explicit[0])
    with caplog.at_level("WARNING"):
        pipe(lq, num_inference_steps=3, generator=gen(), output_type="pt")
    assert "distilled for 2 steps" in caplog.text
    with pytest.raises(ValueError, match="decreasing"):
        FluxIRAdapter(num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
                      joint_attention_dim=16, pooled_projection_dim=8, axes_dims_rope=[2, 2, 4], rank=2,
                      max_sequence_length=4, distilled_sigmas=[0.5, 0.9])  # fmt: skip


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny trained adapter and its data."""
    root = tmp_path_factory.mktemp("distill")
    pairs = make_pairs_folder(root / "fluxgen", size=(128, 128))
    config = _config(pairs, root / "teacher", max_train_steps=2)
    Trainer(config).train()
    return pairs, root / "teacher"


def _config(pairs, out, **kwargs):
    base = {
        "pretrained_model": "tiny", "dataset": str(pairs), "crop_sizes": ["64x64"], "max_train_steps": 2, "rank": 4,
        "output_dir": str(out), "validation_steps": None, "report_to": "none", "checkpointing_steps": 100,
        "learning_rate": 1e-3, "pixel_loss_crop": 4, "mixed_precision": "no", "gradient_checkpointing": False,
    }  # fmt: skip
    return TrainConfig(**{**base, **kwargs})


def test_distill_stage_saves_a_student_with_its_cost_aware_schedule(teacher, tmp_path):
    pairs, teacher_dir = teacher
    out = tmp_path / "student"
    config = _config(pairs, out, stage="distill", adapter_init=str(teacher_dir), num_student_steps=2,
                     teacher_steps=6, schedule_search_batches=2, max_train_steps=2)  # fmt: skip
    history = Trainer(config).train()
    assert len(history) == 2 and all(np.isfinite(h["loss"]) and h["loss_teacher"] >= 0 for h in history)
    schedule = json.loads((out / "distill_schedule.json").read_text())
    assert schedule["indices"][0] == 0 and schedule["indices"][-1] == 6 and len(schedule["indices"]) == 3
    assert schedule["cost"] <= schedule["uniform_cost"] + 1e-9  # never worse than uniform on its own costs
    student = FluxIRAdapter.from_pretrained(out)
    assert student.config.distilled_sigmas == schedule["sigmas"] and len(student.config.distilled_sigmas) == 2
    teacher_adapter = FluxIRAdapter.from_pretrained(teacher_dir)
    changed = [not torch.equal(a, b) for a, b in zip(student.parameters(), teacher_adapter.parameters(), strict=True)]
    assert any(changed)  # the student trained; the teacher folder is untouched
    assert teacher_adapter.config.distilled_sigmas is None


def test_distill_stage_refuses_what_it_cannot_do(teacher, tmp_path):
    pairs, teacher_dir = teacher
    with pytest.raises(ValueError, match="needs the trained adapter"):
        _config(pairs, tmp_path, stage="distill").validate()
    with pytest.raises(ValueError, match="divides teacher_steps"):
        _config(pairs, tmp_path, stage="distill", adapter_init=str(teacher_dir), distill_schedule="uniform",
                num_student_steps=3, teacher_steps=20).validate()  # fmt: skip
    with pytest.raises(ValueError, match="from 1 to teacher_steps"):
        _config(pairs, tmp_path, stage="distill", adapter_init=str(teacher_dir), num_student_steps=20).validate()
    with pytest.raises(ValueError, match="'adapter', 'rl' or 'distill'"):
        _config(pairs, tmp_path, stage="rlhf").validate()


def test_student_card_says_it_is_a_few_step_student(teacher, tmp_path):
    from training.hub import write_model_card

    pairs, teacher_dir = teacher
    config = _config(pairs, tmp_path, stage="distill", adapter_init=str(teacher_dir), num_student_steps=2)
    card = write_model_card(tmp_path, config, steps=5).read_text()
    assert "few-step student" in card and "in 2 steps" in card and "num_inference_steps=20" not in card
    plain = write_model_card(tmp_path / "plain", _config(pairs, tmp_path), steps=5).read_text()
    assert "few-step" not in plain and "num_inference_steps=20" in plain


def test_the_authors_weights_per_student_size_are_the_default():
    """Their 4-step student weighs the ground truth x600, the 2-step one x300, and the 1-step one uses L1."""
    from training.config import TrainConfig

    four, two, one = (TrainConfig(stage="distill", num_student_steps=k) for k in (4, 2, 1))
    assert (four.resolved_distill_gt_weight, four.resolved_distill_distance) == (600.0, "mse")
    assert (two.resolved_distill_gt_weight, two.resolved_distill_distance) == (300.0, "mse")
    assert (one.resolved_distill_gt_weight, one.resolved_distill_distance) == (300.0, "l1")
    given = TrainConfig(num_student_steps=4, distill_gt_weight=300.0, distill_distance="l1")
    assert (given.resolved_distill_gt_weight, given.resolved_distill_distance) == (300.0, "l1")


def test_a_student_distilled_from_an_lq_mixed_start_starts_there_in_the_pipeline(teacher, tmp_path):
    pairs, teacher_dir = teacher
    out = tmp_path / "student"
    config = _config(pairs, out, stage="distill", adapter_init=str(teacher_dir), num_student_steps=2,
                     teacher_steps=6, schedule_search_batches=1, distill_start_lq_weight=0.2)  # fmt: skip
    Trainer(config).train()
    student = FluxIRAdapter.from_pretrained(out)
    assert student.config.distilled_start_lq_weight == 0.2 and len(student.config.distilled_sigmas) == 2
    pipe = tiny_pipeline()
    lq = photo(size=(16, 16))
    pipe.adapter.register_to_config(distilled_sigmas=student.config.distilled_sigmas)
    plain = pipe(lq, generator=gen(), output_type="pt").images
    pipe.adapter.register_to_config(distilled_start_lq_weight=0.2)
    mixed = pipe(lq, generator=gen(), output_type="pt").images
    assert not torch.allclose(plain, mixed)  # its own schedule: from the LQ-mixed start
    explicit = pipe(lq, sigmas=student.config.distilled_sigmas, generator=gen(), output_type="pt").images
    torch.testing.assert_close(explicit, plain)  # a schedule the caller gives starts from noise, as always
