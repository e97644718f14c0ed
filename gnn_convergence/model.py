"""The connectivity GNN, K seeds at once: pred = phi*(u, a) + (W * M) psi*(u, a).

Implements docs/model.md, "Model", in its dense form. Every parameter carries a leading
seed dimension K, and seed k is initialised from its own generator, so a seed trained in a
stack of K gives what it gives alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from gnn_convergence.config import ModelConfig


class StackedMLP(nn.Module):
    """K independent MLPs in -> hidden -> ... -> 1 with ReLU between layers."""

    def __init__(self, n_seeds: int, dims: Sequence[int]) -> None:
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(n_seeds, d_in, d_out)) for d_in, d_out in zip(dims, dims[1:])
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.empty(n_seeds, 1, d_out)) for d_out in dims[1:]
        )

    def init_seed(self, k: int, hidden_std: float, gen: torch.Generator) -> None:
        """First layer as PyTorch's nn.Linear default, later layers Normal(0, std^2), bias 0."""
        w0, b0 = self.weights[0], self.biases[0]
        bound = 1.0 / math.sqrt(w0.shape[1])
        w0[k].uniform_(-bound, bound, generator=gen)
        b0[k].uniform_(-bound, bound, generator=gen)
        for w, b in zip(self.weights[1:], self.biases[1:]):
            w[k].normal_(0.0, hidden_std, generator=gen)
            b[k].zero_()

    def forward(self, x: torch.Tensor, seeds: slice = slice(None)) -> torch.Tensor:
        """x (K, R, in) -> (K, R, 1); `seeds` selects a slice of the stack."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b[seeds], x, w[seeds])  # (K, R, d_out)
            if i < last:
                x = torch.relu(x)
        return x


class ConnectivityGNN(nn.Module):
    """phi* (lin_phi), psi* (lin_edge), W and node embeddings for K seeds."""

    def __init__(self, cfg: ModelConfig, n_neurons: int, seeds: Sequence[int]) -> None:
        super().__init__()
        k, n, e = len(seeds), n_neurons, cfg.embedding_dim
        dims = [1 + e] + [cfg.hidden_dim] * (cfg.n_layers - 1) + [1]
        self.seeds = list(seeds)
        self.phi = StackedMLP(k, dims)
        self.psi = StackedMLP(k, dims)
        self.w = nn.Parameter(torch.empty(k, n, n))  # (K, N, N), W[post, pre]
        embedding = torch.ones(k, n, e)  # (K, N, E)
        if cfg.single_type:
            self.register_buffer("embedding", embedding)
        else:
            self.embedding = nn.Parameter(embedding)
        self.register_buffer("mask", 1.0 - torch.eye(n))  # (N, N)
        self._init(cfg)

    @torch.no_grad()
    def _init(self, cfg: ModelConfig) -> None:
        for k, seed in enumerate(self.seeds):
            gen = torch.Generator().manual_seed(seed)
            self.w[k].normal_(0.0, cfg.w_init_std, generator=gen).mul_(self.mask)
            self.phi.init_seed(k, cfg.hidden_init_std, gen)
            self.psi.init_seed(k, cfg.hidden_init_std, gen)

    def features(self, u: torch.Tensor) -> torch.Tensor:
        """u (K, B, N) -> MLP input (K, B * N, 1 + E): the state and the node embedding."""
        k, b, n = u.shape
        a = self.embedding[:, None].expand(k, b, n, -1)  # (K, B, N, E)
        return torch.cat([u[..., None], a], dim=-1).reshape(k, b * n, -1)

    def phi_values(self, u: torch.Tensor) -> torch.Tensor:
        """phi*(u_i, a_i): (K, B, N) -> (K, B, N)."""
        return self.phi(self.features(u)).view(u.shape)

    def psi_values(self, u: torch.Tensor) -> torch.Tensor:
        """psi*(u_j, a_j): (K, B, N) -> (K, B, N)."""
        return self.psi(self.features(u)).view(u.shape)

    def aggregate(self, psi: torch.Tensor) -> torch.Tensor:
        """sum_{j != i} W[i, j] psi_j: (K, B, N) -> (K, B, N)."""
        return torch.bmm(psi, (self.w * self.mask).transpose(1, 2))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """The predicted derivative du/dt for states u (K, B, N)."""
        return self.phi_values(u) + self.aggregate(self.psi_values(u))

    def curves(self, u: torch.Tensor, node: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """psi* and phi* of one node's embedding over values u (G,): two (K, G)."""
        k = self.w.shape[0]
        a = self.embedding[:, node, None].expand(k, len(u), -1)  # (K, G, E)
        x = torch.cat([u.expand(k, -1)[..., None], a], dim=-1)  # (K, G, 1 + E)
        return self.psi(x)[..., 0], self.phi(x)[..., 0]

    def learned_w(self) -> torch.Tensor:
        """W with its diagonal zeroed, detached: (K, N, N)."""
        return (self.w * self.mask).detach()
