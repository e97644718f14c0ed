"""The dense model equals the per-edge torch_geometric formulation, values and gradients."""

from __future__ import annotations

import pytest
import torch

from gnn_convergence.config import ModelConfig
from gnn_convergence.model import ConnectivityGNN
from gnn_convergence.reference import PerEdgeGNN


@pytest.mark.parametrize("single_type", [True, False])
def test_dense_equals_per_edge(single_type):
    torch.manual_seed(0)
    model = ConnectivityGNN(ModelConfig(single_type=single_type), n_neurons=12, seeds=[3, 4])
    if not single_type:
        with torch.no_grad():
            model.embedding.normal_()
    u = torch.randn(2, 5, 12) * 3  # (K, B, N)
    dense = model(u)
    for k in range(2):
        model.zero_grad()
        dense[k].square().sum().backward(retain_graph=True)
        dense_grads = [p.grad[k].clone() for p in model.parameters()]
        model.zero_grad()
        per_edge = PerEdgeGNN(model, k)(u[k])
        torch.testing.assert_close(per_edge, dense[k], atol=1e-5, rtol=1e-5)
        per_edge.square().sum().backward()
        for g_dense, p in zip(dense_grads, model.parameters()):
            torch.testing.assert_close(p.grad[k], g_dense, atol=1e-4, rtol=1e-4)


def test_initialisation_follows_the_reference_and_is_per_seed():
    model = ConnectivityGNN(ModelConfig(), n_neurons=100, seeds=[0, 1])
    assert torch.all(torch.diagonal(model.w, dim1=1, dim2=2) == 0)
    assert abs(model.w[0].std().item() - 1.0) < 0.05
    assert abs(model.phi.weights[1][0].std().item() - 0.1) < 0.01
    assert torch.all(model.phi.biases[2] == 0)
    bound = 1 / 3**0.5
    assert model.psi.weights[0].abs().max() <= bound
    assert not torch.equal(model.w[0], model.w[1])
    alone = ConnectivityGNN(ModelConfig(), n_neurons=100, seeds=[1])
    torch.testing.assert_close(alone.w[0], model.w[1], rtol=0, atol=0)
    torch.testing.assert_close(alone.psi.weights[1][0], model.psi.weights[1][1], rtol=0, atol=0)


def test_frozen_embeddings_are_not_parameters():
    frozen = ConnectivityGNN(ModelConfig(single_type=True), n_neurons=5, seeds=[0])
    assert all(p is not frozen.embedding for p in frozen.parameters())
    learnable = ConnectivityGNN(ModelConfig(single_type=False), n_neurons=5, seeds=[0])
    assert any(p is learnable.embedding for p in learnable.parameters())
