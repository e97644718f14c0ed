"""Seeds trained together equal seeds trained alone; divergence stops only its seed; each epoch
starts with a fresh Adam; the loss is the formula."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import pytest
import torch

from gnn_convergence import trainer
from gnn_convergence.config import ModelConfig, SimulationConfig, TrainingConfig
from gnn_convergence.metrics import connectivity_r2
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.optimizer import PopulationAdam
from gnn_convergence.run import stack_data
from gnn_convergence.simulation import simulate
from gnn_convergence.trainer import (
    Hyper,
    edge_delta,
    frame_draws,
    loss_terms,
    train,
)

SIM = SimulationConfig(n_neurons=30, n_frames=1000, seed=7)
TRAIN = TrainingConfig(
    learning_rate_W_start=1e-2,
    batch_size=4,
    n_epochs=2,
    data_augmentation_loop=1,
    log_interval=10,
    compile=False,
)
STEPS_PER_EPOCH = 25


@pytest.fixture(scope="module")
def datasets():
    return {7: simulate(SIM), 8: simulate(dataclasses.replace(SIM, seed=8))}


def _stack(data_seeds, datasets, dtype=torch.float64):
    data = stack_data(
        {s: datasets[s] for s in dict.fromkeys(data_seeds)}, data_seeds, torch.device("cpu")
    )
    return dataclasses.replace(
        data, **{f: getattr(data, f).to(dtype) for f in ("activity", "derivative", "delta")}
    )


def _train(seeds, data_seeds, datasets, dtype=torch.float64):
    """Train in float64, so that kernel-dependent float32 rounding (which Adam amplifies
    where gradients are near zero) cannot hide a real coupling between seeds."""
    model = ConnectivityGNN(ModelConfig(), SIM.n_neurons, seeds).to(dtype)
    return model, train(model, _stack(data_seeds, datasets, dtype), TRAIN, STEPS_PER_EPOCH)


def test_seeds_together_equal_seeds_alone(datasets):
    seeds, data_seeds = [11, 12, 13], [7, 8, 7]
    together, result = _train(seeds, data_seeds, datasets)
    assert result.n_steps == 50 and result.diverged_at == [None] * 3
    for k, (seed, data_seed) in enumerate(zip(seeds, data_seeds)):
        alone, alone_result = _train([seed], [data_seed], datasets)
        for p_together, p_alone in zip(together.parameters(), alone.parameters()):
            torch.testing.assert_close(p_together[k], p_alone[0], atol=1e-9, rtol=1e-9)
        np.testing.assert_allclose(result.final_loss[k], alone_result.final_loss[0], rtol=1e-6)
    assert not torch.allclose(together.w[0], together.w[2])


MIXED = [  # each member's own learning rates and loss coefficients
    {"learning_rate_W_start": 1e-2},
    {"learning_rate_W_start": 3e-3, "learning_rate_start": 1e-4},
    {"coeff_W_L1": 1e-4, "coeff_edge_diff": 0.0},
    {"learning_rate_W_start": 2e-2, "learning_rate_embedding_start": 1e-3, "coeff_edge_diff": 9.0},
]


def test_every_member_of_a_mixed_population_ends_where_its_solo_run_ends(datasets):
    configs = [dataclasses.replace(TRAIN, **change) for change in MIXED]
    seeds, data_seeds = [11, 12, 13, 11], [7, 8, 7, 8]
    model_cfg = ModelConfig(single_type=False)  # learned embeddings: their own learning rate
    model = ConnectivityGNN(model_cfg, SIM.n_neurons, seeds).to(torch.float64)
    hyper = Hyper.of(configs, torch.float64, torch.device("cpu"))
    result = train(model, _stack(data_seeds, datasets), TRAIN, STEPS_PER_EPOCH, hyper=hyper)
    for k, (seed, data_seed, cfg) in enumerate(zip(seeds, data_seeds, configs)):
        alone = ConnectivityGNN(model_cfg, SIM.n_neurons, [seed]).to(torch.float64)
        alone_result = train(alone, _stack([data_seed], datasets), cfg, STEPS_PER_EPOCH)
        for p_population, p_alone in zip(model.parameters(), alone.parameters()):
            torch.testing.assert_close(p_population[k], p_alone[0], atol=1e-10, rtol=1e-9)
        np.testing.assert_allclose(result.final_loss[k], alone_result.final_loss[0], rtol=1e-9)
    assert len(set(result.final_loss.round(6))) == len(configs)


def test_population_adam_steps_alike_fused_by_blocks_and_with_foreach_kernels():
    """The CPU path (fused calls per block of equal learning rates) and the GPU path (foreach
    kernels, learning rates as tensors) give one update, also across a reset."""
    generator = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 4, 3, generator=generator, dtype=torch.float64) for _ in range(2)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(4)]
    lrs = [torch.tensor(r, dtype=torch.float64) for r in ([1e-2] * 3 + [2e-3] * 2, [1e-3] * 5)]
    ends = []
    for fused in (True, False):
        params = [p.clone() for p in start]
        adam = PopulationAdam(params, lrs, fused=fused)
        for step, grad in enumerate(grads):
            if step == 2:
                adam.reset()
            for p, g in zip(params, grad):
                p.grad = g
            adam.step()
        ends.append(params)
    assert len(PopulationAdam(start, lrs, fused=True).calls) == 4  # 2 blocks x 2 rates
    for fused_end, foreach_end in zip(*ends):
        torch.testing.assert_close(fused_end, foreach_end, atol=1e-14, rtol=1e-12)
    assert not torch.allclose(ends[0][0], start[0])


def _torch_adam(model, cfg):
    """torch.optim.Adam with a parameter group per learning rate: W, the MLPs."""
    mlps = [*model.phi.parameters(), *model.psi.parameters()]
    return torch.optim.Adam(
        [
            {"params": [model.w], "lr": cfg.learning_rate_W_start},
            {"params": mlps, "lr": cfg.learning_rate_start},
        ]
    )


def _train_by_hand(seeds, data_seeds, datasets, reset_at):
    """The training loop written out with torch's Adam, re-created at each step of
    `reset_at`."""
    model = ConnectivityGNN(ModelConfig(), SIM.n_neurons, seeds).to(torch.float64)
    data = _stack(data_seeds, datasets)
    n_steps = TRAIN.n_epochs * STEPS_PER_EPOCH
    frames = frame_draws(seeds, n_steps, TRAIN.batch_size, data.activity.shape[1] - 1)
    rows = data.index[:, None]
    optimizer = _torch_adam(model, TRAIN)
    for step in range(n_steps):
        if step in reset_at:
            optimizer = _torch_adam(model, TRAIN)
        idx = torch.from_numpy(frames[:, step])
        loss, _ = loss_terms(
            model,
            u=data.activity[rows, idx],
            y=data.derivative[rows, idx],
            delta=data.delta[data.index],
            coeff_w_l1=TRAIN.coeff_W_L1,
            coeff_edge_diff=TRAIN.coeff_edge_diff,
        )
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    return model


def test_adam_is_torchs_reset_at_the_epoch_boundary_and_parameters_carry_over(datasets):
    seeds, data_seeds = [11, 12], [7, 8]
    model, result = _train(seeds, data_seeds, datasets)
    assert result.n_steps == 2 * STEPS_PER_EPOCH
    # the parameters carry over: epoch 1, then a fresh torch Adam for epoch 2, by hand
    reset = _train_by_hand(seeds, data_seeds, datasets, reset_at={STEPS_PER_EPOCH})
    for p_trained, p_hand in zip(model.parameters(), reset.parameters()):
        torch.testing.assert_close(p_trained, p_hand, atol=1e-9, rtol=1e-9)
    # and the reset matters: one Adam throughout ends elsewhere
    kept = _train_by_hand(seeds, data_seeds, datasets, reset_at=set())
    assert not torch.allclose(model.w, kept.w, atol=1e-6, rtol=0)


def test_a_diverging_seed_stops_and_the_others_go_on(datasets):
    broken = dataclasses.replace(datasets[8], derivative=datasets[8].derivative.copy())
    broken.derivative[:] = np.inf
    both = {7: datasets[7], 8: broken}
    model, result = _train([1, 2], [7, 8], both)
    assert result.diverged_at == [None, 0]
    assert np.isfinite(result.final_loss[0]) and np.isnan(result.final_loss[1])
    alone, _ = _train([1], [7], both)
    torch.testing.assert_close(model.w[0], alone.w[0], atol=1e-9, rtol=1e-9)
    assert np.isfinite(result.curve.loss_per_n[0]).all()
    assert np.isnan(result.curve.loss_per_n[1]).all()


def test_training_curve_is_what_the_trainer_logs(datasets, caplog):
    """Every log_interval steps the trainer logs loss/N (the interval's mean of
    ||pred - y||_2 / N) and connectivity_R2 per seed; it returns the same values as arrays."""
    caplog.set_level(logging.INFO, logger=trainer.__name__)
    seeds, data_seeds = [11, 12], [7, 8]
    model, result = _train(seeds, data_seeds, datasets)
    curve = result.curve
    np.testing.assert_array_equal(curve.step, [10, 20, 30, 40, 50])
    assert curve.loss_per_n.shape == curve.connectivity_R2.shape == (2, 5)
    logged = [r.getMessage() for r in caplog.records if "loss/N" in r.getMessage()]
    assert logged == [
        f"step {step} loss/N [{' '.join(f'{v:.3g}' for v in curve.loss_per_n[:, i])}] "
        f"connectivity_R2 [{' '.join(f'{v:.3f}' for v in curve.connectivity_R2[:, i])}]"
        for i, step in enumerate(curve.step)
    ]
    true_w = torch.tensor(np.stack([datasets[s].w for s in data_seeds]))
    np.testing.assert_allclose(
        curve.connectivity_R2[:, -1], connectivity_r2(model.learned_w(), true_w).numpy()
    )
    # the first point is the mean data term of steps 0-9 over N, seed by seed
    by_hand = ConnectivityGNN(ModelConfig(), SIM.n_neurons, seeds).to(torch.float64)
    data = _stack(data_seeds, datasets)
    n_steps = TRAIN.n_epochs * STEPS_PER_EPOCH
    frames = frame_draws(seeds, n_steps, TRAIN.batch_size, data.activity.shape[1] - 1)
    optimizer, norms = _torch_adam(by_hand, TRAIN), []
    for step in range(10):
        idx = torch.from_numpy(frames[:, step])
        loss, norm = loss_terms(
            by_hand,
            u=data.activity[data.index[:, None], idx],
            y=data.derivative[data.index[:, None], idx],
            delta=data.delta[data.index],
            coeff_w_l1=TRAIN.coeff_W_L1,
            coeff_edge_diff=TRAIN.coeff_edge_diff,
        )
        norms.append(norm.detach())
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    expected = (torch.stack(norms).mean(0) / SIM.n_neurons).numpy()
    np.testing.assert_allclose(curve.loss_per_n[:, 0], expected, rtol=1e-6)  # float32 sum


def test_frame_draws_are_per_seed_and_in_range():
    draws = frame_draws([0, 1], n_steps=100, batch_size=8, n_frames=50)
    assert draws.shape == (2, 100, 8)
    assert draws.min() >= 0 and draws.max() < 46
    np.testing.assert_array_equal(draws[1], frame_draws([1], 100, 8, 50)[0])


class _KnownCurves(ConnectivityGNN):
    """psi*(u) = |u| and phi*(u) = -u: a loss small enough to compute by hand."""

    def psi_values(self, u: torch.Tensor) -> torch.Tensor:
        return u.abs()

    def phi_values(self, u: torch.Tensor) -> torch.Tensor:
        return -u


def test_loss_terms_by_hand():
    """N = 2, frames u = (-1, 2) and (-3, -1), W = [[5, 2], [-1, 0]] (the diagonal is masked in
    the prediction, not in the L1 term). pred = -u + W_offdiag |u| = (5, -3) and (5, -2); with
    y = (5, -1) and (4, -2) the data term is sqrt(2^2 + 1^2) = sqrt(5). The W L1 term counts per
    frame: 2 * 0.01 * 8 = 0.16. With delta 0.5, |u| - |u + 0.5| clipped at 0 is (0.5, 0) and
    (0.5, 0.5): edge norms 0.5 + sqrt(0.5), times 2.0 = 1 + sqrt(2). Member 1 has delta 0 and
    no L1 coefficient: its loss is the data term alone."""
    model = _KnownCurves(ModelConfig(), n_neurons=2, seeds=[0, 1]).to(torch.float64)
    with torch.no_grad():
        model.w.copy_(torch.tensor([[5.0, 2.0], [-1.0, 0.0]]).expand(2, 2, 2))
    u = torch.tensor([[-1.0, 2.0], [-3.0, -1.0]], dtype=torch.float64).expand(2, 2, 2)
    y = torch.tensor([[5.0, -1.0], [4.0, -2.0]], dtype=torch.float64).expand(2, 2, 2)
    terms = {
        "u": u,
        "y": y,
        "delta": torch.tensor([0.5, 0.0], dtype=torch.float64),
        "coeff_w_l1": torch.tensor([0.01, 0.0], dtype=torch.float64),
        "coeff_edge_diff": torch.tensor([2.0, 2.0], dtype=torch.float64),
    }
    loss, data = loss_terms(model, **terms)
    root5 = math.sqrt(5)
    torch.testing.assert_close(data, torch.tensor([root5, root5], dtype=torch.float64))
    expected = [root5 + 0.16 + 1 + math.sqrt(2), root5]
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64))
    no_edge, _ = loss_terms(model, **terms, edge=False)
    torch.testing.assert_close(no_edge, torch.tensor([root5 + 0.16, root5], dtype=torch.float64))


@pytest.mark.parametrize(
    ("activity", "delta"),
    [
        ([[0.0, 4.0]], 3 / 150),  # std 2, xnorm 3
        ([[-4.0, 4.0], [4.0, -4.0]], 6 / 150),  # std 4, xnorm 6
        ([[1.0, 1.3]], 0.0),  # std 0.15, xnorm round(0.225) = 0
    ],
)
def test_edge_delta_is_xnorm_over_150(activity, delta):
    assert edge_delta(np.array(activity)) == pytest.approx(delta)
