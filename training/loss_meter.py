"""Loss terms of the training steps between two log lines, kept without host syncs.

Terms that arrive as tensors are summed on their device (float64) and read back once per log
line; terms that arrive as Python floats are summed on the host. Both give the same logged
means: a float64 sum divided by the step count, rounded to float32 and averaged over ranks.
A non-finite total seen on the device is remembered (its first iteration) and raised by
`check_finite`, which the trainer calls before it logs, evaluates or writes a checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["LossMeter", "Term", "as_summable"]

Term = float | Tensor

NONFINITE_HINT = "lower lr or enable clip_grad_norm"


def as_summable(value: Term) -> Term:
    """A loss term ready to be summed: tensors detached, in float64 on their device."""
    return value.detach().to(torch.float64) if isinstance(value, Tensor) else value


class LossMeter:
    """Sums loss terms step by step; `means()` averages them (over steps and ranks) and
    starts a new window."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, Term] = {}
        self.steps = 0
        self._first_nonfinite = torch.full((), -1, dtype=torch.int64, device=device)

    def add(self, terms: Mapping[str, Term]) -> None:
        """Add one optimizer step's terms (floats or tensors)."""
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0.0) + as_summable(value)
        self.steps += 1

    def watch(self, total: Tensor, iteration: int) -> None:
        """Remember `iteration` if `total` is not finite and none was before (no host sync)."""
        bad = ~torch.isfinite(total.detach()) & (self._first_nonfinite < 0)
        self._first_nonfinite = torch.where(
            bad, torch.full_like(self._first_nonfinite, iteration), self._first_nonfinite
        )

    def check_finite(self) -> None:
        """FloatingPointError if a watched total was not finite (one host sync)."""
        iteration = int(self._first_nonfinite)
        if iteration >= 0:
            raise FloatingPointError(f"non-finite loss at iteration {iteration}; {NONFINITE_HINT}")

    def means(self) -> dict[str, float]:
        """Each term's mean over the steps since the last call, averaged over all ranks
        (a collective under torch.distributed); resets the sums."""
        import torch.distributed as dist

        names = sorted(self.sums)
        if not names:
            return {}
        sums = [
            torch.as_tensor(self.sums[name], dtype=torch.float64, device=self.device)
            for name in names
        ]
        values = (torch.stack(sums) / max(self.steps, 1)).to(torch.float32)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(values)
            values /= dist.get_world_size()
        self.sums, self.steps = {}, 0
        return dict(zip(names, values.tolist(), strict=True))
