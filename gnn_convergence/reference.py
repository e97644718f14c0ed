"""The per-edge formulation of the reference (torch_geometric MessagePassing), for one seed.

Evaluates psi* once per edge j -> i over all N(N-1) ordered pairs of every frame, as the
reference code does; used by the tests (it must equal the dense model) and the benchmark.
"""

from __future__ import annotations

import torch
from torch_geometric.nn import MessagePassing

from gnn_convergence.model import ConnectivityGNN


def full_edge_index(n_neurons: int, n_frames: int) -> torch.Tensor:
    """Edges j -> i for all i != j, repeated for each frame of a batch: (2, B * N * (N - 1))."""
    src, dst = torch.where(~torch.eye(n_neurons, dtype=torch.bool))
    offsets = torch.arange(n_frames).repeat_interleave(len(src)) * n_neurons
    return torch.stack([src.repeat(n_frames) + offsets, dst.repeat(n_frames) + offsets])


class PerEdgeGNN(MessagePassing):
    """pred_i = phi*(u_i, a_i) + sum_j W[i, j] psi*(u_j, a_j), one message per edge."""

    def __init__(self, model: ConnectivityGNN, seed_index: int) -> None:
        super().__init__(aggr="add", flow="source_to_target")
        self.model = model
        self.k = slice(seed_index, seed_index + 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (B, N) -> predicted derivative (B, N) for the chosen seed."""
        b, n = u.shape
        a = self.model.embedding[self.k][0].repeat(b, 1)  # (B * N, E)
        x = torch.cat([u.reshape(-1, 1), a], dim=1)  # (B * N, 1 + E)
        edge_index = full_edge_index(n, b).to(u.device)
        w = self.model.w[self.k][0]  # (N, N)
        weight = w[edge_index[1] % n, edge_index[0] % n]  # (E,), W[post, pre]
        phi = self.model.phi(x[None], self.k)[0]  # (B * N, 1)
        return (phi + self.propagate(edge_index, x=x, weight=weight)).view(b, n)

    def message(self, x_j: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """psi*(u_j, a_j) evaluated on each edge, scaled by W[i, j]."""
        return weight[:, None] * self.model.psi(x_j[None], self.k)[0]
