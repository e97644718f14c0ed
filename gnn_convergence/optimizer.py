"""Adam for a population: parameters whose leading dimension is the member, one learning rate
per member and parameter (docs/model.md, "Populations")."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class PopulationAdam:
    """torch.optim.Adam's update (betas 0.9, 0.999, eps 1e-8) for parameters whose leading
    dimension is the member, with one learning rate per member and parameter: (K,) tensors.

    On a CPU, consecutive members with the same learning rates (the seeds of one run) form a
    block, and each block steps in one call of torch's fused Adam kernel per learning rate, on
    views of the stacked tensors: one pass over memory, as a run's Adam makes. Elsewhere (a GPU)
    a step is a dozen foreach kernels with the learning rates as tensors, whatever the number
    of blocks, reading nothing back from the device. `reset` zeroes moments and step counts in
    place: a fresh Adam on the same tensors.
    """

    betas, eps = (0.9, 0.999), 1e-8

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lrs: Sequence[torch.Tensor],
        fused: bool | None = None,
    ) -> None:
        self.params = list(params)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.fused = self.params[0].device.type == "cpu" if fused is None else fused
        self.lrs = [lr.to(p.dtype).view(-1, *[1] * (p.dim() - 1)) for p, lr in zip(params, lrs)]
        device = self.params[0].device
        self.step_count = torch.zeros((), dtype=torch.float64, device=device)
        self.calls = _fused_calls(lrs) if self.fused else []
        self.steps = [[torch.zeros((), device=device) for _ in i] for _, i, _ in self.calls]
        self.counts = [self.step_count, *(c for steps in self.steps for c in steps)]
        self.views = [  # each call's parameters and moments, made once
            [[t[i][block] for i in index] for t in (self.params, self.exp_avg, self.exp_avg_sq)]
            for _, index, block in self.calls
        ]

    def reset(self) -> None:
        """Zero moments and step counts: the next step is a fresh Adam's first."""
        torch._foreach_zero_([*self.exp_avg, *self.exp_avg_sq, *self.counts])

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of every parameter from its .grad."""
        if self.fused:
            self._fused_step()
        else:
            self._foreach_step()

    def _fused_step(self) -> None:
        beta1, beta2 = self.betas
        torch._foreach_add_(self.counts, 1)
        for (lr, index, block), steps, (params, exp_avg, exp_avg_sq) in zip(
            self.calls, self.steps, self.views
        ):
            torch._fused_adam_(
                params,
                [self.params[i].grad[block] for i in index],
                exp_avg,
                exp_avg_sq,
                [],
                steps,
                amsgrad=False,
                lr=lr,
                beta1=beta1,
                beta2=beta2,
                weight_decay=0.0,
                eps=self.eps,
                maximize=False,
            )

    def _foreach_step(self) -> None:
        beta1, beta2 = self.betas
        self.step_count += 1
        dtype = self.params[0].dtype  # the corrections in float64, applied in the params' dtype
        correction2_sqrt = (1 - beta2**self.step_count).sqrt().to(dtype)
        correction1 = (beta1**self.step_count - 1).to(dtype)  # negative: the update subtracts
        grads = [p.grad for p in self.params]
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, 1 - beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, correction2_sqrt)
        torch._foreach_add_(denom, self.eps)
        updates = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(updates, torch._foreach_div(self.lrs, correction1))
        torch._foreach_add_(self.params, updates)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _fused_calls(lrs: Sequence[torch.Tensor]) -> list[tuple[float, list[int], slice]]:
    """(learning rate, parameter indices, member slice) of each fused call: blocks of
    consecutive members with equal learning rates, one call per distinct rate in a block."""
    rates = list(zip(*(lr.tolist() for lr in lrs)))  # member k: its rate of each parameter
    calls, start = [], 0
    for end in range(1, len(rates) + 1):
        if end == len(rates) or rates[end] != rates[start]:
            for lr in dict.fromkeys(rates[start]):
                index = [i for i, rate in enumerate(rates[start]) if rate == lr]
                calls.append((lr, index, slice(start, end)))
            start = end
    return calls
