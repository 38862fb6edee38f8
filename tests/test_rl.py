"""RL trajectory tuning (paper 002 §4, `fluxir-train --stage rl`): the modulated SDE step and the stage on the tiny
stack."""

import numpy as np
import pytest
import torch

from fluxir_hub import FluxIRAdapter
from training.rl import modulated_sde_step
from training.trainer import Trainer

from .helpers import make_pairs_folder
from .test_distill import _config


def test_modulated_step_lands_on_the_next_noise_level_and_is_euler_without_exploration():
    torch.manual_seed(0)
    x0, eps, xi = torch.randn(3, 4, 20000, 1).unbind(0)
    sigma, sigma_next = 0.8, 0.7
    x = (1 - sigma) * x0 + sigma * eps
    v = eps - x0  # the exact rectified-flow velocity
    euler = x + (sigma_next - sigma) * v
    plain = modulated_sde_step(x, v, sigma, sigma_next, torch.ones(4), torch.zeros_like(x))
    assert torch.allclose(plain, euler, atol=1e-6)
    for alpha in (1.3, 1.9):
        out = modulated_sde_step(x, v, sigma, sigma_next, torch.full((4,), alpha), xi)
        # on the marginal of sigma_next: x0 weight 1 - sigma_next, independent noise of std sigma_next
        data = (out * x0).mean() / (x0 * x0).mean()
        noise = (out - data * x0).std()
        assert data.item() == pytest.approx(1 - sigma_next, abs=0.01)
        assert noise.item() == pytest.approx(sigma_next, abs=0.01)
        assert not torch.allclose(out, euler, atol=1e-2)  # it did leave the ODE path
    # an overshoot past noise level 0 is clipped rather than extrapolated
    near = modulated_sde_step(x, v, 0.1, 0.05, torch.full((4,), 3.0), xi)
    assert torch.isfinite(near).all()


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    root = tmp_path_factory.mktemp("rl")
    pairs = make_pairs_folder(root / "fluxgen", size=(128, 128))
    Trainer(_config(pairs, root / "policy", max_train_steps=2)).train()
    return pairs, root / "policy"


def test_rl_stage_keeps_the_best_rollout_and_tunes_the_adapter(policy, tmp_path):
    pairs, start = policy
    out = tmp_path / "rl"
    config = _config(pairs, out, stage="rl", adapter_init=str(start), teacher_steps=4, rl_rollouts=3,
                     rl_perturb_steps=[1, 2], max_train_steps=3, rl_refresh_steps=2)  # fmt: skip
    trainer = Trainer(config)
    history = trainer.train()
    assert len(history) == 3
    for logs in history:
        assert np.isfinite(logs["loss"]) and logs["loss_traj"] >= 0 and logs["loss_gt"] >= 0
        assert logs["reward_gain"] >= 0  # the kept branch is never worse than the reference's ODE path
        assert logs["rl_step"] in (1, 2)
    tuned, initial = FluxIRAdapter.from_pretrained(out), FluxIRAdapter.from_pretrained(start)
    assert any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), initial.parameters(), strict=True))
    # refreshed at step 2: the reference then held the policy of step 2, not the initial adapter
    reference = trainer.stage.reference.state_dict()
    assert any(not torch.equal(reference[k], v) for k, v in initial.state_dict().items())
    # no rollouts (the ablation): the only branch is the ODE path, so nothing is gained
    config = _config(pairs, tmp_path / "none", stage="rl", adapter_init=str(start), teacher_steps=4, rl_rollouts=0,
                     rl_perturb_steps=[1], max_train_steps=1)  # fmt: skip
    assert Trainer(config).train()[0]["reward_gain"] == 0


def test_rl_stage_refuses_what_it_cannot_do(policy, tmp_path):
    pairs, start = policy
    cases = [
        ({"stage": "rl"}, "`--stage rl` tunes a trained adapter"),
        ({"stage": "rl", "adapter_init": str(start), "rl_perturb_steps": [19]}, "from 0 to teacher_steps - 2"),
        ({"stage": "rl", "adapter_init": str(start), "rl_alpha": [0.5, 2.0]}, "1 <= low < high"),
        ({"stage": "rl", "adapter_init": str(start), "rl_rollouts": -1}, "`rl_rollouts` must be >= 0"),
        ({"stage": "rl", "adapter_init": str(start), "rl_refresh_steps": 0}, "`rl_refresh_steps` must be"),
        ({"stage": "rl", "adapter_init": str(start), "rl_traj_weight": -1.0}, "`rl_traj_weight` must be"),
        (
            {"stage": "rl", "adapter_init": str(start), "use_lora": True},
            "not for `--stage rl`: it trains the adapter only",
        ),
    ]
    for change, message in cases:
        with pytest.raises(ValueError, match=message):
            _config(pairs, tmp_path, **change).validate()


def test_the_authors_rollout_form_follows_the_policys_own_ode_with_gradients(policy, tmp_path):
    """`rl_loss_form rollout`: the policy's ODE from the start noise, checkpointed per step. Without exploration the
    only branch is the reference's ODE, which the freshly refreshed policy retraces exactly: L_traj is 0 and L_GT is
    the whole trajectory's error (the one-step form's L_GT is a one-jump estimate, another number)."""
    pairs, start = policy
    common = {"stage": "rl", "adapter_init": str(start), "teacher_steps": 4, "rl_rollouts": 0, "rl_perturb_steps": [1],
              "max_train_steps": 1, "learning_rate": 0.0}  # fmt: skip
    rollout = Trainer(_config(pairs, tmp_path / "rollout", rl_loss_form="rollout", **common)).train()[0]
    one_step = Trainer(_config(pairs, tmp_path / "one", rl_loss_form="one-step", **common)).train()[0]
    assert rollout["loss_traj"] < 1e-10 and rollout["loss_gt"] > 0
    assert abs(rollout["loss_gt"] - one_step["loss_gt"]) > 1e-6
    trainer = Trainer(_config(pairs, tmp_path / "grad", rl_loss_form="rollout", **{**common, "learning_rate": 1e-2}))
    trainer.train()
    tuned, initial = FluxIRAdapter.from_pretrained(tmp_path / "grad"), FluxIRAdapter.from_pretrained(start)
    assert any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), initial.parameters(), strict=True))
    with pytest.raises(ValueError, match="`rl_loss_form` must be one-step or rollout"):
        _config(pairs, tmp_path, **{**common, "rl_loss_form": "full"}).validate()
