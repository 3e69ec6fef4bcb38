"""Data-parallel training under torchrun: the process group, DDP wrapping and the few collectives the training
loop needs so that every rank takes the same decisions (stop, checkpoint, evaluate, learning rate).

Without torchrun (no WORLD_SIZE in the environment, or WORLD_SIZE=1) everything here is a no-op, so a single
process trains exactly as before.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn


def env_rank() -> int:
    """This process's rank as torchrun set it (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


class LossModule(nn.Module):
    """Holds the module being trained and computes its loss in `forward`, so DistributedDataParallel (which
    hooks a module's forward) can wrap a loss that calls methods other than the module's own forward."""

    def __init__(self, module: nn.Module, loss_fn: Callable[..., tuple[torch.Tensor, dict]]):
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, *args) -> tuple[torch.Tensor, dict]:
        """The loss and its metrics for one batch."""
        return self.loss_fn(*args)


class Distributed:
    """The process group of a torchrun launch (gloo on the CPU, nccl on CUDA), or a single process."""

    def __init__(self, device: str):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank, self.local_rank = env_rank(), int(os.environ.get("LOCAL_RANK", "0"))
        self.device = device
        if self.world_size == 1:
            return
        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda under torchrun needs CUDA devices: pass --device cpu (gloo)")
            self.device = f"cuda:{self.local_rank}"
            torch.cuda.set_device(self.device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.startswith("cuda") else "gloo")

    @property
    def active(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, shows progress and writes checkpoints."""
        return self.rank == 0

    def wrap(self, module: nn.Module, loss_fn: Callable[..., tuple[torch.Tensor, dict]]) -> nn.Module:
        """`module` with `loss_fn` as its forward, in DistributedDataParallel when distributed (the weights are
        broadcast from rank 0 and gradients averaged over the ranks in backward)."""
        net = LossModule(module, loss_fn)
        if not self.active:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        # the modules' buffers are constants (FSQ levels, action scaling): no need to broadcast them every step
        return DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)

    def _tensor(self, values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64, device=self.device)

    def from_main(self, values: list[float]) -> list[float]:
        """Rank 0's `values` on every rank (decisions taken on rank 0's clock: stop, save, evaluate)."""
        if not self.active:
            return values
        t = self._tensor(values)
        dist.broadcast(t, src=0)
        return t.tolist()

    def mean(self, value: float) -> float:
        """The mean of `value` over the ranks (the loss every rank reports and checks)."""
        if not self.active:
            return value
        t = self._tensor([value])
        dist.all_reduce(t)
        return t.item() / self.world_size

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's tensor `t` (same shape and dtype on all ranks, e.g. a generator state), on the CPU."""
        if not self.active:
            return [t]
        local = t.to(self.device)
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local)
        return [o.cpu() for o in out]

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.active:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group."""
        if self.active and dist.is_initialized():
            dist.destroy_process_group()
