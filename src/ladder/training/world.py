"""A rank's place among the processes training one adapter, and the few collectives the loop needs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class World:
    """This process's place among the ranks training one adapter (size 1: alone)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, items: list) -> list:
        """This rank's items: every `size`-th, from `rank` (all of them when alone)."""
        return items[self.rank :: self.size]

    def sum(self, values: list[float]) -> list[float]:
        """Each value summed over the ranks."""
        if self.size == 1:
            return values
        import torch

        nccl = torch.distributed.get_backend() == "nccl"  # NCCL reduces GPU tensors only
        t = torch.tensor(values, dtype=torch.float64, device="cuda" if nccl else "cpu")
        torch.distributed.all_reduce(t)
        return t.tolist()

    def sum_grads(self, params) -> None:
        """Gradients summed over the ranks; a rank with no micro-batch this step adds zeros."""
        if self.size == 1:
            return
        import torch

        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)

    def same_weights(self, params) -> None:
        """Every rank starts from rank 0's weights (fresh or resumed)."""
        if self.size == 1:
            return
        import torch

        with torch.no_grad():
            for p in params:
                torch.distributed.broadcast(p.data, 0)


SOLO = World()
