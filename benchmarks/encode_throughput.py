"""Encoding throughput of the reference CAE against its training throughput (target: encoding >= 3x faster per image).

Both run in the same process on the same images: training is caekit's engine (Adam, MSE, channels_last, in-memory
uint8 batches); encoding is ``caekit.encode`` (inference mode, large batches), the call behind ``caekit encode``.
Rounds alternate so that machine noise hits both alike; the table shows medians.

    python benchmarks/encode_throughput.py [--model cae32|cae28] [--images 2048] [--rounds 3] [--data DIR]

DIR is a dataset root for the model's dataset (CIFAR-10 class folders for cae32, a folder holding MNIST/raw for
cae28); without it random uint8 images of the right shape are used.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time

import torch

from caekit import api
from caekit.config import OptimConfig, TrainConfig
from caekit.data import Batches, load_dataset
from caekit.models import create_model
from caekit.runner import engine_for
from caekit.training.objectives import Reconstruct

DATASETS = {"cae32": ("cifar10", (3, 32, 32)), "cae28": ("mnist", (1, 28, 28))}


def training_rate(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> float:
    engine = engine_for(
        model,
        Reconstruct("mse"),
        TrainConfig(batch_size=batch_size, epochs=1, progress=False, device="cpu", cpu_tuning=True),
        OptimConfig(),
    )
    batches = Batches({"image": images, "label": torch.zeros(len(images), dtype=torch.long)}, batch_size)
    return engine.train_epoch(batches, 0)["images_per_s"]


def encoding_rate(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> float:
    api.encode(model, images[:batch_size], batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    api.encode(model, images, batch_size=batch_size)
    return len(images) / (time.perf_counter() - start)


@torch.inference_mode()
def channels_last_rate(model: torch.nn.Module, images: torch.Tensor, batch_size: int) -> float:
    """Encoding as the training engine lays data out: channels_last weights and inputs, training-sized batches."""
    model = model.to(memory_format=torch.channels_last)

    def run(chunk: torch.Tensor) -> None:
        model.encode(chunk.float().div_(255).contiguous(memory_format=torch.channels_last))

    run(images[:batch_size])
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        run(images[i : i + batch_size])
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(DATASETS), default="cae32")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--encode-batch-size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", help="dataset root (see above)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    dataset, shape = DATASETS[args.model]
    if args.data:
        pool = load_dataset(dataset, "train", root=args.data).images
        images = pool[torch.arange(args.images) % len(pool)].contiguous()
        source = f"{dataset} images from {args.data}"
    else:
        images = torch.randint(0, 256, (args.images, *shape), dtype=torch.uint8)
        source = f"random {'x'.join(map(str, shape))} uint8 images"
    torch.manual_seed(0)
    reference = create_model(args.model)

    train_rates, encode_rates, cl_rates = [], [], []
    for _ in range(args.rounds):
        train_rates.append(training_rate(copy.deepcopy(reference), images, args.batch_size))
        encode_rates.append(encoding_rate(copy.deepcopy(reference).eval(), images, args.encode_batch_size))
        cl_rates.append(channels_last_rate(copy.deepcopy(reference).eval(), images, args.batch_size))
    train, encode, cl = statistics.median(train_rates), statistics.median(encode_rates), statistics.median(cl_rates)

    print(
        f"{args.model}, {args.images} {source}, {args.rounds} alternating rounds, median of each; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}\n"
    )
    print("| step | batch | images/s | ms per image | vs training |")
    print("|---|---:|---:|---:|---:|")
    print(f"| training step (forward + backward + Adam) | {args.batch_size} | {train:.0f} | {1000 / train:.2f} | 1.00x |")
    print(f"| encoding (caekit.encode) | {args.encode_batch_size} | {encode:.0f} | {1000 / encode:.2f} | {encode / train:.2f}x |")
    print(f"| encoding, channels_last model and inputs | {args.batch_size} | {cl:.0f} | {1000 / cl:.2f} | {cl / train:.2f}x |")


if __name__ == "__main__":
    main()
