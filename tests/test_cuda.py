"""The CUDA path: a run on the GPU equals the same run on the CPU to float32 tolerance, eager,
compiled and with CUDA graphs; a mixed population on the GPU equals its members alone.
Skipped where no CUDA device is present (benchmarks/gpu_check.sh runs them on a GPU)."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from gnn_convergence.optimizer import PopulationAdam
from gnn_convergence.run import train_population

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]
TOLERANCE = 1e-3  # connectivity_R2 at convergence: CPU and GPU kernels round apart


def _on(cfg, device: str, **training):
    """The tiny pair (3,000 steps, converging) on `device`, with training changes."""
    return dataclasses.replace(
        cfg, device=device, training=dataclasses.replace(cfg.training, **training)
    )


def _r2(cfg) -> list[float]:
    return [s.connectivity_R2 for s in train_population([cfg])[0].result.seeds]


@pytest.mark.parametrize(
    "training",
    [
        {},
        {"compile": True},
        {"compile": True, "compile_mode": "reduce-overhead"},
    ],
    ids=["eager", "compiled", "cuda-graphs"],
)
def test_a_cuda_run_equals_the_cpu_run(tiny_config, training):
    on_cpu = _r2(_on(tiny_config, "cpu"))
    on_gpu = _r2(_on(tiny_config, "cuda", **training))
    assert on_gpu == pytest.approx(on_cpu, abs=TOLERANCE)


def test_a_mixed_population_on_cuda_equals_its_members_alone(tiny_config):
    runs = [
        _on(tiny_config, "cuda", seeds=[0, 1]),
        _on(tiny_config, "cuda", seeds=[2], learning_rate_W_start=2e-2, coeff_W_L1=1e-5),
    ]
    members = train_population(runs)
    for cfg, member in zip(runs, members):
        alone = [s.connectivity_R2 for s in member.result.seeds]
        assert _r2(cfg) == pytest.approx(alone, abs=TOLERANCE)
        assert member.result.device.startswith("cuda")


def test_population_adam_steps_alike_on_cpu_and_cuda():
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(4, 5, 6, generator=generator)
    grad = torch.randn(4, 5, 6, generator=generator)
    lr = torch.tensor([1e-3, 2e-3, 5e-3, 1e-2])
    ends = []
    for device in ("cpu", "cuda"):
        p = start.clone().to(device).requires_grad_()
        adam = PopulationAdam([p], [lr.to(device)])
        for _ in range(3):
            p.grad = grad.to(device)
            adam.step()
        ends.append(p.detach().cpu())
    torch.testing.assert_close(ends[0], ends[1], atol=1e-6, rtol=1e-5)


def test_the_training_loop_syncs_with_the_host_only_to_report(tiny_config):
    """CUDA's sync debug mode warns at every host sync: their number does not grow with the
    number of steps between two reports."""

    def syncs(epochs: int) -> int:
        cfg = _on(tiny_config, "cuda", n_epochs=epochs, log_interval=10_000)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train_population([cfg])
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    once = syncs(1)
    assert once > 0  # the reports sync: a count of 0 would mean the warnings stopped matching
    assert syncs(2) == once
