"""Data-parallel training: which process this is, and the few collective operations the trainer needs.

`torchrun --nproc_per_node=N -m reformer_cli run ...` (or SLURM through submitit) starts N processes;
each builds the same model, trains on its own slice of every global batch, and
DistributedDataParallel averages gradients. Only rank 0 writes records, checkpoints and W&B.
Without those environment variables everything here is a no-op (world size 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import UserError
from .sweeps import is_multirun


@dataclass(frozen=True)
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched_world() -> World:
    """The process's place as the launcher (torchrun, or SLURM via submitit) describes it."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        _export_slurm_environment()
    return World(
        rank=int(os.environ.get("RANK", 0)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        size=int(os.environ.get("WORLD_SIZE", 1)),
    )


def torchrun_arguments(args: list[str]) -> list[str]:
    """`reformer run`'s arguments for one process of a launch of several (torchrun, or a
    multi-task SLURM job), before Hydra starts: every process writes into one shared run folder
    (`hydra.run.dir`; torchrun's run id names it when none is given), and only rank 0 writes
    Hydra's files and logs. UserError for a sweep, or a launch whose processes cannot agree on a folder."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return args
    if is_multirun(args):
        raise UserError("sweeps (-m) cannot run under torchrun; sweep with hydra/launcher=slurm instead")
    extra = []
    if not any(a.startswith("hydra.run.dir=") for a in args):
        run_id = os.environ.get("TORCHELASTIC_RUN_ID", "")
        if not run_id or run_id == "none":
            raise UserError(
                "under torchrun all processes must write to one folder: pass hydra.run.dir=<folder>"
                " (or use torchrun --standalone, or --rdzv-id=<id>)"
            )
        extra.append(f"hydra.run.dir=outputs/torchrun-{run_id}")
    if int(os.environ.get("RANK", "0")) > 0:
        extra += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return [*args, *extra]


def _export_slurm_environment() -> None:
    """Inside a SLURM job started by submitit: set RANK, WORLD_SIZE, MASTER_ADDR, ... from SLURM's
    variables (docs/runner.md, "More than one process": never run torchrun inside submitit)."""
    try:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export()
    except (ImportError, RuntimeError):
        pass


def init_world(device_name: str) -> tuple[World, str]:
    """Join the process group if launched for several processes. Returns the world and the device
    this process should use (cuda:<local_rank> for multi-GPU runs)."""
    world = launched_world()
    if not world.distributed:
        return world, device_name
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
        device_name = f"cuda:{world.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return world, device_name


def shutdown(world: World) -> None:
    """Leave the process group (no barrier: a process ending on an error must not wait for the others)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum over processes, in place (identity for one process)."""
    if world.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_rank(flag: bool, device: torch.device, world: World) -> bool:
    """True on every process if `flag` is true on any (keeps ranks stepping together on a stop)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def wrap_model(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel around `model` when there are several processes.

    Reversible layers need no special mode: their backward (model/reversible.py) returns each
    parameter's gradient through autograd exactly once instead of calling backward inside backward,
    so DDP's gradient hooks fire once per parameter, as for any module. (`static_graph=True`, the
    usual workaround for reentrant backwards, is not used: tests/test_distributed.py found it
    skipping the first step's all-reduce for this model's dataclass output.)
    """
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)
