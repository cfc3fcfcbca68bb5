"""Out-of-core training: the on-disk store against the same images in memory, and memory as the store grows.

Two tables, after the time to build the folder's store. (1) Throughput: the reference CAE trained on a folder's images loaded into memory and on the same images
read batch by batch from the folder's memory-mapped store (in the page cache after its first epoch), alternating
rounds, median; the ratio is the figure. (2) Memory: stores of 1x, 4x and 16x a base set of real images (the folder's
images resized up, repeated), each trained over for the same number of shuffled batches in a fresh process, with that
process's anonymous memory (``RssAnon``: what the process itself holds, not the file pages the kernel can drop) and
file-backed memory (``RssFile``) sampled throughout; flat ``RssAnon`` means memory does not grow with the store.

    python benchmarks/data_store.py --data DIR [--rounds 5] [--images 4000] [--size 64] [--base 20000] [--steps 300]
    python benchmarks/data_store.py --data DIR --only build      (seconds to build, reopen and load a folder's store)
    python benchmarks/data_store.py --data DIR --only checksums  (decoding PNGs with and without their CRC check)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from caekit.training.engine import Engine


def _status(field: str) -> int:
    """A /proc/self/status field, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    return -1


def _engine(shape: tuple[int, int, int], batch_size: int) -> Engine:
    from caekit.config import OptimConfig, TrainConfig
    from caekit.models import create_model
    from caekit.runner import engine_for
    from caekit.training.objectives import Reconstruct

    torch.manual_seed(0)
    model = create_model("cae", spec="cae32", input_shape=shape)
    config = TrainConfig(batch_size=batch_size, epochs=1, progress=False, device="cpu", cpu_tuning=True)
    return engine_for(model, Reconstruct(), config, OptimConfig())


def build(root: Path) -> None:
    """Seconds to build the folder's store from nothing, to open it again, and to load it into memory."""
    from caekit.data import load_dataset

    start = time.perf_counter()
    stored = load_dataset("folder", root=root, in_memory=False)
    cold = time.perf_counter() - start
    start = time.perf_counter()
    load_dataset("folder", root=root, in_memory=False)
    warm = time.perf_counter() - start
    start = time.perf_counter()
    load_dataset("folder", root=root, in_memory=True)
    load = time.perf_counter() - start
    c, h, w = stored.shape
    print(
        f"\n{len(stored):,} images ({c}x{h}x{w}) of {root}: store built in {cold:.1f} s ({len(stored) / cold:,.0f} images/s), "
        f"opened again in {warm:.2f} s, loaded into memory in {load:.2f} s"
    )


def checksums(root: Path, images: int, rounds: int) -> None:
    """Decoding a folder's PNGs as caekit does (chunk checksums verified first, then decoded) against decoding them
    without the check, in alternating rounds over the same files (in the page cache after the first round)."""
    from PIL import Image

    from caekit.data.datasets import read_image

    files = sorted(root.rglob("*.png"))[:images]

    def unchecked(path: Path) -> None:
        with Image.open(path) as img:
            img.load()
            img.convert("RGB")

    def checked(path: Path) -> None:
        image, why = read_image(path)
        assert image is not None, why

    seconds: dict[str, list[float]] = {"checked": [], "unchecked": []}
    for _ in range(rounds):
        for name, decode in (("unchecked", unchecked), ("checked", checked)):
            start = time.perf_counter()
            for path in files:
                decode(path)
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(times) for name, times in seconds.items()}
    print(f"\n{len(files)} PNGs of {root}, {rounds} alternating rounds, median")
    print("| decoding | seconds | images/s |\n|---|---:|---:|")
    for name in ("unchecked", "checked"):
        print(f"| {name} | {median[name]:.2f} | {len(files) / median[name]:,.0f} |")
    print(f"checked / unchecked time: {median['checked'] / median['unchecked']:.2f}")


def throughput(root: Path, images: int, rounds: int, batch_size: int) -> None:
    from caekit.data import load_dataset

    memory = load_dataset("folder", root=root, in_memory=True)
    stored = load_dataset("folder", root=root, in_memory=False)
    n = min(images, len(memory))
    sets = {"in memory": memory.subset(range(n)), "on-disk store": stored.subset(range(n))}
    engine = _engine(memory.shape, batch_size)
    rates: dict[str, list[float]] = {name: [] for name in sets}
    for epoch in range(rounds + 1):
        for name, data in sets.items():
            batches = engine.batches(data, shuffle=True)
            batches.set_epoch(epoch)
            rate = engine.train_epoch(batches, epoch)["images_per_s"]
            if epoch:  # the first round warms both up (and reads the store into the page cache)
                rates[name].append(rate)
    c, h, w = memory.shape
    print(f"\n{n:,} images ({c}x{h}x{w}) of {root}, batch {batch_size}, median of {rounds} alternating epochs")
    print("| images come from | images/s | vs in memory |")
    print("|---|---:|---:|")
    base = statistics.median(rates["in memory"])
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):,.0f} | {statistics.median(values) / base:.2f}x |")


def build_store(folder: Path, root: Path, size: int, count: int) -> None:
    """A store of ``count`` images: the folder's images resized to ``size`` (RGB), repeated in order."""
    import torch.nn.functional as F

    from caekit.data import load_dataset
    from caekit.data.store import StoreWriter

    base = load_dataset("folder", root=root, channels=3)
    writer = StoreWriter(folder, (3, size, size))
    written = 0
    while written < count:
        for start in range(0, len(base), 2048):
            part = base.pixels()[start : start + 2048][: count - written]
            if not len(part):
                break
            big = F.interpolate(part.float(), size=(size, size), mode="bilinear", align_corners=False)
            writer.append(big.round_().clamp_(0, 255).to(torch.uint8).numpy())
            written += len(part)
    writer.commit({"made by": "benchmarks/data_store.py"})


def train_over(folder: Path, steps: int, batch_size: int) -> dict[str, float]:
    """Train the reference CAE for ``steps`` shuffled batches over a store; memory sampled every 20 ms."""
    from caekit.data import ImageSet
    from caekit.data.store import open_store

    store = open_store(folder)
    assert store is not None
    images = store.images()
    data = ImageSet(images, torch.zeros(len(images), dtype=torch.long), ["x"], "store")  # type: ignore[arg-type]
    peak = {"RssAnon": 0, "RssFile": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for key in peak:
                peak[key] = max(peak[key], _status(key))
            time.sleep(0.02)

    engine = _engine(store.shape, batch_size)
    start_anon = _status("RssAnon")
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    picks = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[: steps * batch_size]
    batches = engine.batches(data.subset(picks), shuffle=True)  # rows from all over the store, still on disk
    start = time.perf_counter()
    engine.train_epoch(batches, 0)
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    gib = store.nbytes() / 2**30
    return {"GiB": gib, "images": len(images), "start": start_anon, **peak, "images_per_s": steps * batch_size / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CAEKIT_SHARED_DATA", "../shared/data") + "/cifar10-sample/train")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=4000, help="images a throughput epoch")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=64, help="side of the memory table's images")
    parser.add_argument("--base", type=int, default=20000, help="images of the 1x store")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=300, help="batches trained over each store")
    parser.add_argument("--work", help="folder for the stores (default: a temporary one)")
    parser.add_argument("--only", choices=["build", "throughput", "memory", "checksums"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_over(Path(args.child), args.steps, args.batch_size)))
        return
    root = Path(args.data)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(dir=args.work) as work:
        os.environ["CAEKIT_CACHE"] = str(Path(work) / "cache")
        if args.only == "checksums":
            checksums(root, args.images, args.rounds)
            return
        if args.only in (None, "build"):
            build(root)
        if args.only in (None, "throughput"):
            throughput(root, args.images, args.rounds, args.batch_size)
        if args.only not in (None, "memory"):
            return
        print(f"\n{args.steps} shuffled batches of {args.batch_size} over each store ({args.size}x{args.size} RGB from {root})")
        print("| store | images | GiB | RssAnon before, MiB | RssAnon peak, MiB | RssFile peak, MiB | images/s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for scale in args.scales:
            folder = Path(work) / f"store-{scale}x"
            build_store(folder, root, args.size, args.base * scale)
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(folder),
                    "--steps",
                    str(args.steps),
                    "--batch-size",
                    str(args.batch_size),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(
                f"| {scale}x | {row['images']:,} | {row['GiB']:.2f} | {row['start']:,} | {row['RssAnon']:,} | "
                f"{row['RssFile']:,} | {row['images_per_s']:,.0f} |",
                flush=True,
            )
            for path in folder.iterdir():
                path.unlink()


if __name__ == "__main__":
    main()
