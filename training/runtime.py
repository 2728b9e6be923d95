"""How a trainer runs on its hardware: the device, one or several processes (DDP
under torchrun) and the precision of the forward pass.  Shared by both trainers
(train.py, train_resaxial.py).

Processes: under ``torchrun --nproc_per_node K`` the environment has WORLD_SIZE,
RANK and LOCAL_RANK; :func:`start_processes` then joins the process group (NCCL
on CUDA with one GPU per local rank, gloo on CPU) and returns a :class:`Processes`
whose collectives (barrier, gather, mean) are no-ops in a single process.

Precision (``precision`` key of both configs):

- ``auto``: bf16 autocast on CUDA, float32 elsewhere;
- ``bf16``: bf16 autocast on whatever device (CPU included);
- ``fp32``: no autocast.

Autocast covers the model's forward only; parameters, gradients and optimiser
state stay float32 and the losses are computed on float32 (or wider) outputs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from dynaprot_viz.core.errors import InputError
from dynaprot_viz.core.models.inference import resolve_device

__all__ = ["PRECISIONS", "check_precision", "autocast", "resolve_device", "Processes", "start_processes"]

#: accepted values of the ``precision`` config key
PRECISIONS = ("auto", "bf16", "fp32")


def check_precision(value) -> None:
    """InputError (one line) unless ``value`` is one of :data:`PRECISIONS`."""
    if value not in PRECISIONS:
        raise InputError(f"precision must be 'auto', 'bf16' or 'fp32', got {value!r}")


def autocast(device: torch.device, precision: str):
    """The context manager for a forward pass on ``device`` at ``precision``:
    ``torch.autocast(device.type, dtype=torch.bfloat16)`` for ``bf16`` (any device)
    and for ``auto`` on CUDA, a null context otherwise."""
    check_precision(precision)
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class Processes:
    """This process's place among the training processes.

    world : number of processes; rank : this one's (0 writes files);
    device : the device this process trains on; owns_group : True when
    :func:`start_processes` initialised the process group (:meth:`close` destroys it).
    """

    world: int = 1
    rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """True on the process that writes checkpoints, metrics and exports (rank 0)."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module, find_unused_parameters: bool = False) -> torch.nn.Module:
        """``model`` in DistributedDataParallel (gradients averaged over processes), or as is."""
        if not self.distributed:
            return model
        return torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=find_unused_parameters)

    def shard(self, items) -> list:
        """This process's share of ``items`` (every world-th, from its rank)."""
        return list(items)[self.rank::self.world]

    def barrier(self) -> None:
        """Wait until every process gets here."""
        if self.distributed:
            import torch.distributed as dist

            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    def gather(self, obj) -> list:
        """``obj`` (picklable) of every process, in rank order (``[obj]`` in a single process)."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def mean(self, values) -> list:
        """Element-wise mean of the floats ``values`` over processes (same length on every one)."""
        values = [float(v) for v in values]
        if not self.distributed or not values:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return (t / self.world).tolist()

    def agree(self, value, what: str) -> None:
        """InputError when the processes hold different ``value`` (e.g. the step each
        resumed from: out_dir must be on a file system that every process sees)."""
        seen = self.gather(value)
        if any(v != seen[0] for v in seen):
            raise InputError(f"training processes disagree on {what}: {seen} (is out_dir shared by all of them?)")

    def close(self) -> None:
        """Destroy the process group if :func:`start_processes` created it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


def start_processes(device_name: str) -> Processes:
    """The device and process layout of this run.

    ``device_name`` : ``auto`` | ``cpu`` | ``cuda`` | ``cuda:K``.  With WORLD_SIZE > 1 in
    the environment (torchrun), joins the process group (NCCL on CUDA, gloo on CPU)
    unless it is already initialised; on CUDA, process LOCAL_RANK uses GPU LOCAL_RANK.
    """
    device = resolve_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Processes(1, 0, device, False)
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return Processes(dist.get_world_size(), dist.get_rank(), device, owns)
