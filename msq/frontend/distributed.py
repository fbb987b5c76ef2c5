"""Where training runs: the device (``--device``), the data loader, and DistributedDataParallel
when ``msq train`` is launched under ``torchrun`` (which sets RANK and WORLD_SIZE).

Kept apart from the training schedule so the schedule reads the same on one process or many.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, TensorDataset

from msq.errors import MSQError

DEVICES = ("auto", "cpu", "cuda")


def check_device(name: str) -> str:
    """``name`` if it is 'auto', 'cpu', 'cuda' or 'cuda:N', else an MSQError."""
    base, _, index = name.partition(":") if isinstance(name, str) else ("", "", "")
    if base not in DEVICES or (index and (base != "cuda" or not index.isdigit())):
        raise MSQError(f"device must be one of {', '.join(DEVICES)} or cuda:N, got {name!r}")
    return name


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``--device``: 'auto' is CUDA when available, else the CPU."""
    check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MSQError(f"device {name!r} requested but CUDA is not available on this machine (use --device cpu)")
    if name == "cuda":
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(name)


@dataclass(frozen=True)
class Workers:
    """This process's place in a training job: rank 0 of 1 unless launched by torchrun."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def writer(self) -> bool:
        """Only rank 0 writes the run directory."""
        return self.rank == 0


def launched_workers() -> Workers:
    """The job torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK), or one process."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise MSQError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers ({exc})") from exc
    if world < 1 or not 0 <= rank < world:
        raise MSQError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process of the job")
    return Workers(rank, world, local)


def start(workers: Workers, device: torch.device) -> None:
    """Join the process group (gloo on the CPU, nccl on CUDA) when the job has several processes."""
    if workers.distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def stop(workers: Workers) -> None:
    if workers.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(workers: Workers) -> None:
    if workers.distributed and dist.is_initialized():
        dist.barrier()


def wrap(model: nn.Module, workers: Workers, device: torch.device) -> nn.Module:
    """The module the training step calls: DDP over ``model`` in a job of several processes.
    Unused parameters are expected (the row scales sit idle during the float warm-up)."""
    if not workers.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def train_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, workers: Workers) -> DataLoader:
    """Shuffled mini-batches, the same order for the same seed; each process of a DDP job gets its
    own share (call ``loader.sampler.set_epoch(epoch)`` every epoch)."""
    data = TensorDataset(x, y)
    if workers.distributed:
        sampler = DistributedSampler(data, num_replicas=workers.world, rank=workers.rank, shuffle=True, seed=seed)
    else:
        sampler = RandomSampler(data, generator=torch.Generator().manual_seed(seed))
    return DataLoader(data, batch_size=batch_size, sampler=sampler)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
