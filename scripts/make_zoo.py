"""Make the model zoo's weights: train each entry, score it on its test images, write the weights and the index.

    python scripts/make_zoo.py --mnist-root data --cifar-root data/cifar10/cifar10 [--only cae28.mnist ...]

Each entry trains with ``caekit.train`` (the config below, seed 0), is scored on the first 1,000 images of its
dataset's official test split by ``score`` (``tests/test_zoo.py`` checks the shipped figures the same way), and lands in ``src/caekit/models/zoo/`` as a safetensors state dict; ``index.json`` records its arguments, data,
metric, sha256 and this command. BENCHMARKS.md (Model zoo) shows the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import save_file

from caekit import __version__
from caekit.fileio import publish
from caekit.models.pretrained import INDEX, ZOO

TEST_IMAGES = 1000
DENOISE_SIGMA = 0.3
DENOISE_SPEC = {
    "name": "dae28",
    "input_shape": [1, 28, 28],
    "encoder": [
        {"type": "conv", "filters": 32, "kernel": 3, "padding": 1, "batch_norm": True},
        {"type": "pool"},
        {"type": "conv", "filters": 32, "kernel": 3, "padding": 1, "batch_norm": True},
        {"type": "pool"},
    ],
    "upsample": "nearest",
}


def _psnr(model: torch.nn.Module, clean: torch.Tensor, noisy: torch.Tensor) -> float:
    from caekit.inference import reconstruct
    from caekit.metrics import psnr

    return psnr(reconstruct(model, noisy), clean).mean().item()


def score(name: str, model: torch.nn.Module, test: Any) -> float:
    """The metric an entry states, on ``test`` (an ImageSet of its first 1,000 test images)."""
    images = test.unit_images()
    if name in ("cae28.mnist", "cae32.cifar10"):
        return _psnr(model, images, images)
    if name == "cae.mnist-denoise":
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0)) * DENOISE_SIGMA
        return _psnr(model, images, (images + noise).clamp(0, 1))
    if name == "vae.mnist":
        from caekit.evaluate.generative import elbo_and_nll

        return elbo_and_nll(model, test, k=100, binarisation="dynamic")["nll"]
    raise KeyError(name)


def entries(mnist: str, cifar: str) -> dict[str, dict[str, Any]]:
    mnist_data = {"name": "mnist", "root": mnist, "val_fraction": 0.05}
    return {
        "cae28.mnist": {
            "config": {"model": {"name": "cae28"}, "data": mnist_data, "train": {"epochs": 3, "batch_size": 64}},
            "data": "MNIST, 57,000 of its 60,000 training images (5 % validation)",
            "normalisation": "grey in [0, 1], 1x28x28",
            "metric": "test PSNR (dB)",
            "dataset": ("mnist", mnist),
        },
        "cae32.cifar10": {
            "config": {
                "model": {"name": "cae32"},
                "data": {"name": "cifar10", "root": cifar, "val_fraction": 0.05},
                "train": {"epochs": 5, "batch_size": 64},
            },
            "data": "CIFAR-10's 50,000 training images as decoded from the JPEG copy (quality 75), 5 % validation",
            "normalisation": "RGB in [0, 1], 3x32x32",
            "metric": "test PSNR (dB)",
            "dataset": ("cifar10", cifar),
        },
        "cae.mnist-denoise": {
            "config": {
                "model": {"name": "cae", "args": {"spec": DENOISE_SPEC}},
                "data": mnist_data,
                "objective": {"name": "denoise", "args": {"noise": "gaussian", "level": [0.05, 0.55], "loss": "mse"}},
                "optim": {"weight_decay": 0.0},
                "train": {"epochs": 3, "batch_size": 64},
            },
            "data": "MNIST training images, Gaussian noise of a sigma drawn from [0.05, 0.55] per image",
            "normalisation": "grey in [0, 1], 1x28x28; noisy in, clean out",
            "metric": f"test PSNR (dB) of denoised images, Gaussian sigma {DENOISE_SIGMA}",
            "dataset": ("mnist", mnist),
            "objective": "denoise",
        },
        "vae.mnist": {
            "config": {
                "model": {"name": "vae", "args": {"latent_dim": 16, "channels": [32, 64], "likelihood": "bernoulli"}},
                "data": mnist_data,
                "objective": {"name": "elbo", "args": {"warmup_steps": 500, "binarise": "dynamic"}},
                "optim": {"weight_decay": 0.0},
                "train": {"epochs": 10, "batch_size": 64},
            },
            "data": "MNIST training images, binarised dynamically (a fresh Bernoulli draw each time)",
            "normalisation": "binary {0, 1}, 1x28x28 (a Bernoulli decoder)",
            "metric": "test NLL (nats), importance-sampled, k = 100, binarised once with seed 0",
            "dataset": ("mnist", mnist),
            "objective": "elbo",
        },
    }


def make(name: str, entry: dict[str, Any], test_of: Callable[[str, str], Any], command: str) -> dict[str, Any]:
    import caekit
    from caekit.runner import model_arguments

    with tempfile.TemporaryDirectory() as runs:
        result = caekit.train({**entry["config"], "runs_dir": runs, "name": name})
    model = result.model.cpu().eval()
    test = test_of(*entry["dataset"])
    value = score(name, model, test)
    model_name, tag = name.split(".")
    args = model_arguments(model_name, entry["config"]["model"].get("args", {}), test.shape)
    shape = args.pop("input_shape")
    args.pop("num_classes", None)
    file = f"{model_name}-{tag}.safetensors"
    ZOO.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    tmp = ZOO / f".{file}.tmp"
    save_file(state, str(tmp), metadata={"caekit_version": __version__, "entry": name, "command": command})
    publish(tmp, ZOO / file)  # atomic, with the umask's mode
    print(f"{name}: {entry['metric']} {value:.3f}  ({sum(v.numel() for v in state.values()):,} values)", flush=True)
    return {
        "model": model_name,
        "tag": tag,
        "file": file,
        "sha256": hashlib.sha256((ZOO / file).read_bytes()).hexdigest(),
        "input_shape": list(shape),
        "data": entry["data"],
        "normalisation": entry["normalisation"],
        "metric": entry["metric"],
        "value": round(value, 3),
        "test": f"the first {TEST_IMAGES:,} images of the official test split",
        "args": args,
        "objective": entry.get("objective", "reconstruct"),
        "command": command,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-root", default="data")
    parser.add_argument("--cifar-root", default="data/cifar10/cifar10")
    parser.add_argument("--only", nargs="+", help="entries to remake (the others stay as they are)")
    args = parser.parse_args()
    from caekit.data import load_dataset

    def test_of(dataset: str, root: str) -> Any:
        return load_dataset(dataset, "test", root=root).subset(list(range(TEST_IMAGES)))

    command = f"python scripts/make_zoo.py --mnist-root {args.mnist_root} --cifar-root {args.cifar_root}"
    index = {f"{e['model']}.{e['tag']}": e for e in json.loads(INDEX.read_text())} if INDEX.is_file() else {}
    for name, entry in entries(args.mnist_root, args.cifar_root).items():
        if args.only and name not in args.only:
            continue
        index[name] = make(name, entry, test_of, command + (f" --only {name}" if args.only else ""))
        INDEX.write_text(json.dumps(list(index.values()), indent=1) + "\n")


if __name__ == "__main__":
    main()
