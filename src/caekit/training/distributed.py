"""torchrun / DistributedDataParallel support: who am I, and combining numbers across processes.

``torchrun --nproc_per_node N -m caekit train ...`` (or ``python -m torch.distributed.run``) describes the job in
the environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); ``setup`` joins that process group with
NCCL on GPUs and gloo on CPUs. A single process (no WORLD_SIZE, or 1) never touches ``torch.distributed``.
"""

from __future__ import annotations

import atexit
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from caekit.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not a whole number; launch with torchrun") from None


def elastic() -> bool:
    """Whether torchrun may restart this process group after a failure (``--max-restarts`` above 0). A restart is
    not always counted in TORCHELASTIC_RESTART_COUNT (a healthy node restarted for its peer's sake keeps 0)."""
    return _env_int("TORCHELASTIC_MAX_RESTARTS", 0) > 0


def setup(device_type: str) -> DistInfo:
    """Join the process group torchrun describes in the environment (a no-op for a single process)."""
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        local_rank = _env_int("LOCAL_RANK", 0)
        missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
        if missing:
            raise ConfigError(f"WORLD_SIZE={world_size} but {', '.join(missing)} not set; launch with torchrun")
        if device_type == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ConfigError(
                    f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPU(s) visible; "
                    "use --nproc_per_node at most the number of GPUs"
                )
            torch.cuda.set_device(local_rank)  # before NCCL starts, so each rank talks from its own GPU
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
        atexit.register(teardown)
    return current()


def current() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over all processes (identity when not distributed)."""
    if _active():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def gather_cpu(value: torch.Tensor) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped CPU tensor (e.g. RNG states), in rank order; ``[value]`` alone otherwise."""
    if not _active():
        return [value]
    out = [torch.empty_like(value) for _ in range(dist.get_world_size())]
    if dist.get_backend() == "nccl":  # NCCL moves CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device())
        moved = [torch.empty_like(value, device=device) for _ in out]
        dist.all_gather(moved, value.to(device))
        return [m.cpu() for m in moved]
    dist.all_gather(out, value)
    return out


def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Give every rank rank ``src``'s weights and buffers, in place (no file needs to be shared between machines)."""
    if _active():
        with torch.no_grad():
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=src)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
