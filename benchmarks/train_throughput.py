"""Training throughput of the reference 32x32 CAE: caekit's engine against a minimal plain PyTorch loop.

Both train the same model (same initial weights) on the same CIFAR-shaped batches with Adam and MSE, in
alternating rounds so that machine noise hits both alike. Each loop runs in a fresh process: caekit's engine
changes process-wide settings (the allocator, see ``caekit.training.cpu``) that must not leak into the plain loop; a
third loop, the plain one with that allocator setting, shows how much of the gain comes from it. Also measures this machine's float32
matrix-multiply rate and reports the share of it each loop reaches (about 119 MFLOP per image per step).

    python benchmarks/train_throughput.py [--batch-size 64] [--rounds 3] [--images 2048] [--data DIR] [--levers]

DIR is a CIFAR-10 folder (train/<class>/*.png); without it random CIFAR-shaped images are used. ``--levers`` adds,
in the same alternating rounds, the CPU levers beyond the kernels: Adam's fused kernel, ``torch.compile`` (inductor),
bfloat16 autocast, batches of 128 and 256 (images/s of one epoch, so the same number of epochs), threads pinned to
cores, and one single-thread DDP process per core (gloo, the same global batch) with and without pinning.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from caekit.config import OptimConfig, TrainConfig
from caekit.data import Batches, load_dataset
from caekit.models import create_model
from caekit.runner import engine_for
from caekit.training.cpu import retain_freed_memory
from caekit.training.objectives import Reconstruct


def matmul_gflops(size: int = 1024, repeats: int = 20) -> float:
    """Best of three timings of float32 square matrix multiplies."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9)
    return best


def plain_loop(model: torch.nn.Module, images: torch.Tensor, batch_size: int, epochs: int) -> float:
    """What a PyTorch user writes first: NCHW floats, DataLoader, Adam, MSE. Returns images/s of the last epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=5e-4)
    loader = DataLoader(TensorDataset(images.float() / 255), batch_size=batch_size, shuffle=True)
    model.train()
    rate = 0.0
    for _ in range(epochs):
        seen, start = 0, time.perf_counter()
        for (x,) in loader:
            loss = F.mse_loss(model(x), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen += len(x)
        rate = seen / (time.perf_counter() - start)
    return rate


def caekit_loop(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int, epochs: int, fused: bool = False, **train: Any
) -> float:
    """caekit's engine with its defaults (channels_last, in-memory uint8 batches) and ``train`` settings on top.
    Returns images/s of the last epoch (all processes together under torchrun, each with ``batch_size`` a step)."""
    engine = engine_for(
        model,
        Reconstruct("mse"),
        TrainConfig(batch_size=batch_size, epochs=epochs, progress=False, device="cpu", cpu_tuning=True, **train),
        OptimConfig(),
    )
    if fused:  # the same Adam settings on torch's fused CPU kernel
        o = engine.optim
        for name, optimizer in engine.optimizers.items():
            params = [p for group in optimizer.param_groups for p in group["params"]]
            engine.optimizers[name] = torch.optim.Adam(
                params,
                lr=o.lr,
                betas=o.betas,  # type: ignore[arg-type]  # resolved: never None
                weight_decay=o.weight_decay,
                fused=True,
            )
    tensors = {"image": images, "label": torch.zeros(len(images), dtype=torch.long)}
    batches = Batches(tensors, batch_size, rank=engine.dist.rank, world_size=engine.dist.world_size)
    rate = 0.0
    for epoch in range(epochs):
        batches.set_epoch(epoch)
        rate = engine.train_epoch(batches, epoch)["images_per_s"]
    return rate


LOOPS = {
    "plain": "plain PyTorch loop (NCHW)",
    "plain-retain": "plain loop + caekit's allocator setting",
    "caekit": "caekit engine",
}


@dataclass(frozen=True)
class Lever:
    """One way of running caekit's engine: its ``caekit_loop`` settings (``batch_size`` is global, split across the
    processes; ``pin``: one core per process), extra environment, and processes (0: one per core)."""

    description: str
    settings: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    processes: int = 1


LEVERS = {
    "fused": Lever("caekit + fused Adam", {"fused": True}),
    "compile": Lever("caekit + torch.compile (inductor)", {"compile": True}),
    "bf16": Lever("caekit + bfloat16 autocast", {"amp": True}),
    "batch128": Lever("caekit, batch 128", {"batch_size": 128}),
    "batch256": Lever("caekit, batch 256", {"batch_size": 256}),
    "pinned": Lever("caekit, threads pinned to cores", environment={"OMP_PROC_BIND": "close", "OMP_PLACES": "cores"}),
    "procs": Lever("caekit, a 1-thread DDP process per core", environment={"OMP_NUM_THREADS": "1"}, processes=0),
    "procs-pinned": Lever(
        "caekit, a 1-thread DDP process per core, pinned", {"pin": True}, {"OMP_NUM_THREADS": "1"}, processes=0
    ),
}


def worker(args: argparse.Namespace) -> None:
    """One loop in a fresh process, so that one loop's process-wide settings never reach another."""
    if args.data:
        pool = load_dataset("cifar10", "train", root=args.data).images
        images = pool[torch.arange(args.images) % len(pool)]
    else:
        images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = create_model("cae32")
    settings = dict(LEVERS[args.worker].settings) if args.worker in LEVERS else {}
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if settings.pop("pin", False):  # one core per process
        os.sched_setaffinity(0, {int(os.environ.get("LOCAL_RANK", "0")) % (os.cpu_count() or 1)})
    batch_size = settings.pop("batch_size", args.batch_size) // world
    if args.worker == "plain-retain":
        retain_freed_memory()
    before = resource.getrusage(resource.RUSAGE_SELF)
    if args.worker.startswith("plain"):
        rate = plain_loop(model, images, batch_size, 2)
    else:
        rate = caekit_loop(model, images, batch_size, 2, **settings)
    after = resource.getrusage(resource.RUSAGE_SELF)
    steps = 2 * -(-len(images) // (batch_size * world))
    if int(os.environ.get("RANK", "0")) == 0:
        usage = {
            "faults": (after.ru_minflt - before.ru_minflt) / steps,
            "kernel_ms": (after.ru_stime - before.ru_stime) * 1e3 / steps,
        }
        print(json.dumps({"rate": rate, **usage}))


def run_worker(name: str, args: argparse.Namespace) -> dict[str, float]:
    """images/s of the last epoch, and minor page faults and kernel time per training step (both epochs, rank 0)."""
    environment, processes = dict(os.environ), 1
    if name in LEVERS:
        environment.update(LEVERS[name].environment)
        processes = LEVERS[name].processes or (os.cpu_count() or 1)
    launcher = [sys.executable]
    if processes > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, __file__, "--worker", name, "--batch-size", str(args.batch_size), "--images", str(args.images)]
    command += ["--data", args.data] if args.data else []
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    if done.returncode:
        sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--data", help="CIFAR-10 class folders (train/<class>/*.png)")
    parser.add_argument("--levers", action="store_true", help="also time the CPU levers (see the docstring)")
    parser.add_argument("--worker", choices=[*LOOPS, *LEVERS], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    source = f"CIFAR-10 images from {args.data}" if args.data else "random CIFAR-shaped uint8 images"
    flops_per_image = 6 * create_model("cae32").plan.macs  # forward + backward (2x) multiply-adds, 2 FLOP each
    gflops = matmul_gflops()
    names = {**LOOPS, **({name: lever.description for name, lever in LEVERS.items()} if args.levers else {})}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            results[name].append(run_worker(name, args))
    gflops = max(gflops, matmul_gflops())

    print(
        f"reference CAE (cae32), batch {args.batch_size}, {args.images} {source}, {args.rounds} alternating rounds "
        f"(each loop in a fresh process), median of each; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print(
        f"float32 matrix multiply (1024^3): {gflops:.0f} GFLOP/s; {flops_per_image / 1e6:.0f} MFLOP per image per training step\n"
    )
    print(
        "| loop | images/s | GFLOP/s | share of matmul rate | vs plain | page faults per step | kernel ms per step | rounds (images/s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    plain = statistics.median(r["rate"] for r in results["plain"])
    for name, rounds in results.items():
        rate = statistics.median(r["rate"] for r in rounds)
        faults, kernel = (statistics.median(r[key] for r in rounds) for key in ("faults", "kernel_ms"))
        listed = ", ".join(f"{r['rate']:.0f}" for r in rounds)
        print(
            f"| {names[name]} | {rate:.0f} | {rate * flops_per_image / 1e9:.1f} | {rate * flops_per_image / 1e9 / gflops:.0%} | "
            f"{rate / plain:.2f}x | {faults:,.0f} | {kernel:.1f} | {listed} |"
        )


if __name__ == "__main__":
    main()
