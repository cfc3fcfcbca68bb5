"""Make the model zoo's weights: train each entry, score it on its test images, write the weights and the index.

    python scripts/make_zoo.py --mnist-root data --cifar-root data/cifar10/cifar10 [--only cae28.mnist ...]
    python scripts/make_zoo.py --rescore [--only ...]      # score the shipped weights again, train nothing

Each entry trains with ``caekit.train`` (the config below, seed 0), is scored by ``score`` on its test images (the
first 1,000 of MNIST's official test split; for CIFAR-10, whose test folders are sorted by class, the shared sample's
1,000, 100 a class), and lands in ``src/caekit/models/zoo/`` as a safetensors state dict; ``index.json`` records its
arguments, data, metric, test images, sha256 and this command. ``tests/test_zoo.py`` checks the shipped figures the
same way. BENCHMARKS.md (Model zoo) shows them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from typing import Any

import torch
from safetensors.torch import save_file

from caekit import __version__
from caekit.fileio import atomic_write_text, publish
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


def score(name: str, model: torch.nn.Module, test: Any, root: str) -> float:
    """The metric an entry states, on ``test`` (an ImageSet of its first 1,000 test images from ``root``)."""
    images = test.unit_images()
    if name in ("cae28.mnist", "cae32.cifar10"):
        return _psnr(model, images, images)
    if name == "cae.mnist-denoise":
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0)) * DENOISE_SIGMA
        return _psnr(model, images, (images + noise).clamp(0, 1))
    if name == "vae.mnist":
        from caekit.evaluate.generative import elbo_and_nll

        return elbo_and_nll(model, test, k=100, binarisation="dynamic")["nll"]
    if name == "dcgan.mnist":
        return _frechet_distance(model, test, root)
    raise KeyError(name)


def _frechet_distance(model: Any, test: Any, root: str) -> float:
    """Fréchet distance of 1,000 samples (seed 7) to the test images, in the features of an MNIST judge CNN trained
    here as BENCHMARKS.md's family section trains it (1,000 labelled images a class, 3 epochs, seed 0). Prints it with
    precision/recall beside the same figures for 1,000 real training images, the value a perfect generator reaches."""
    from caekit.data import load_dataset
    from caekit.data.noise import seeded
    from caekit.data.splits import labelled_sample
    from caekit.evaluate.generative import frechet_distance, judge_features, precision_recall
    from caekit.workflows.judge import train_classifier

    train = load_dataset("mnist", "train", root=root)
    judge = train_classifier(labelled_sample(train, per_class=1000, seed=1), epochs=3).cpu().eval()
    real = judge_features(judge, test.unit_images())
    picked = torch.randperm(len(train), generator=torch.Generator().manual_seed(3))[: len(test)]
    rows = {
        "real training images": train.subset(picked.tolist()).unit_images(),
        "samples": model.sample(len(test), generator=seeded(7)),
    }
    distances = {}
    for name, images in rows.items():
        features = judge_features(judge, images)
        precision, recall = precision_recall(real, features, k=3)
        distances[name] = frechet_distance(real.numpy(), features.numpy())
        print(f"{name}: Fréchet distance {distances[name]:.2f}, precision {precision:.3f}, recall {recall:.3f}", flush=True)
    return distances["samples"]


MNIST_TEST = f"the first {TEST_IMAGES:,} images of the official test split"
CIFAR_TEST = "the CIFAR-10 sample's 1,000 test images (the first 100 of each class of the official test split)"


def entries(mnist: str, cifar: str, cifar_sample: str) -> dict[str, dict[str, Any]]:
    mnist_data = {"name": "mnist", "root": mnist, "val_fraction": 0.05}
    mnist_test = {"dataset": ("mnist", mnist), "test": ("mnist", mnist, TEST_IMAGES, MNIST_TEST)}
    return {
        "cae28.mnist": {
            "config": {"model": {"name": "cae28"}, "data": mnist_data, "train": {"epochs": 3, "batch_size": 64}},
            "data": "MNIST, 57,000 of its 60,000 training images (5 % validation)",
            "normalisation": "grey in [0, 1], 1x28x28",
            "metric": "test PSNR (dB)",
            **mnist_test,
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
            "test": ("cifar10", cifar_sample, None, CIFAR_TEST),
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
            **mnist_test,
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
            **mnist_test,
            "objective": "elbo",
        },
        "dcgan.mnist": {
            "config": {
                "model": {"name": "dcgan", "args": {"latent_dim": 64, "width": 32, "extra_layers": 1}},
                "data": mnist_data,
                "objective": {"name": "gan", "args": {"d_steps": 1, "label_smoothing": 0.1}},
                "train": {"epochs": 5, "batch_size": 64},
            },
            "data": "MNIST, 57,000 of its 60,000 training images (5 % validation)",
            "normalisation": "grey in [0, 1], 1x28x28 (the generator's output); latent N(0, 1) of 64 values",
            "metric": "Fréchet distance of 1,000 samples to the test images in an MNIST judge CNN's features",
            **mnist_test,
            "objective": "gan",
        },
    }


def test_images(entry: dict[str, Any]) -> Any:
    """The test images an entry is scored on (an ImageSet)."""
    from caekit.data import load_dataset

    dataset, root, first, _ = entry["test"]
    test = load_dataset(dataset, "test", root=root)
    return test.subset(list(range(first))) if first else test


def rescore(name: str, entry: dict[str, Any], shipped: dict[str, Any]) -> dict[str, Any]:
    """The index entry of the shipped weights with their figure measured again (nothing is trained)."""
    from caekit.models import create_model

    model_name, tag = name.split(".")
    value = score(name, create_model(model_name, pretrained=tag), test_images(entry), entry["dataset"][1])
    print(f"{name}: {entry['metric']} {value:.3f} (index: {shipped['value']})", flush=True)
    return {**shipped, "value": round(value, 3), "test": entry["test"][3]}


def make(name: str, entry: dict[str, Any], command: str) -> dict[str, Any]:
    import caekit
    from caekit.runner import model_arguments

    with tempfile.TemporaryDirectory() as runs:
        result = caekit.train({**entry["config"], "runs_dir": runs, "name": name})
    model = result.model.cpu().eval()
    test = test_images(entry)
    value = score(name, model, test, entry["dataset"][1])
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
        "test": entry["test"][3],
        "args": args,
        "objective": entry.get("objective", "reconstruct"),
        "command": command,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist-root", default="data")
    parser.add_argument("--cifar-root", default="data/cifar10/cifar10")
    parser.add_argument("--cifar-sample", default="../shared/data/cifar10-sample", help="the CIFAR-10 entry's test images")
    parser.add_argument("--only", nargs="+", help="entries to remake (the others stay as they are)")
    parser.add_argument("--rescore", action="store_true", help="score the shipped weights again instead of training")
    args = parser.parse_args()

    command = f"python scripts/make_zoo.py --mnist-root {args.mnist_root} --cifar-root {args.cifar_root}"
    index = {f"{e['model']}.{e['tag']}": e for e in json.loads(INDEX.read_text())} if INDEX.is_file() else {}
    for name, entry in entries(args.mnist_root, args.cifar_root, args.cifar_sample).items():
        if (args.only and name not in args.only) or (args.rescore and name not in index):
            continue
        if args.rescore:
            index[name] = rescore(name, entry, index[name])
        else:
            index[name] = make(name, entry, command + (f" --only {name}" if args.only else ""))
        atomic_write_text(INDEX, json.dumps(list(index.values()), indent=1) + "\n")


if __name__ == "__main__":
    main()
