"""The one inference layer: trained models in, batched predictions out, image files read and written, and a run's
own splits resolved exactly as it was trained.

    model, meta = load(RUN)                        # best checkpoint; nothing is unpickled
    codes = encode(model, run_splits(RUN).test)    # the run's own test images, never its training images
    images = reconstruct(model, read_images(paths, meta["image_shape"]))

Images go in as an ``ImageSet``, uint8 0..255 or float 0..1 ``[N, C, H, W]``; every prediction runs batched, without
gradients, in the memory format the engine trains in. Nothing here draws a picture.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from caekit.checkpoint import checkpoint_file, read_meta
from caekit.config import DataConfig, load_config
from caekit.data.datasets import fit_square, load_dataset, read_image
from caekit.data.imageset import ImageSet, to_unit
from caekit.data.noise import seeded
from caekit.data.splits import Splits, make_splits
from caekit.device import resolve_device
from caekit.errors import CheckpointError, DataError
from caekit.models.weights import load_trained
from caekit.runs import RunFolder, run_folder_of

if TYPE_CHECKING:
    from caekit.models.gan import DCGAN
    from caekit.models.vae import ConvVAE

Images = ImageSet | Tensor


def load(path: str | Path, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """A trained model from a run folder (its best checkpoint) or a .safetensors file, in eval mode."""
    model, meta = load_trained(path)
    return model.to(resolve_device(device)).eval(), meta


# ------------------------------------------------------------------------------------------- batched prediction


def predict(
    model: nn.Module,
    images: Images,
    fn: Callable[[nn.Module, Tensor], Tensor] | None = None,
    batch_size: int = 256,
    progress: bool = False,
    desc: str = "predict",
) -> Tensor:
    """``fn(model, batch)`` (default: ``model(batch)``) over all images in batches of float [0, 1], concatenated on
    the CPU as float32."""
    data = images.images if isinstance(images, ImageSet) else images
    model.eval()
    model.to(memory_format=torch.channels_last)  # the layout the engine trains in: faster convs and pools
    device = next(model.parameters()).device
    call = fn or (lambda net, x: net(x))
    outputs = []
    with torch.inference_mode():
        for start in tqdm(
            range(0, len(data), batch_size), disable=not (progress and sys.stderr.isatty()), desc=desc, leave=False
        ):
            chunk = to_unit(data[start : start + batch_size].to(device))
            if chunk.dim() == 4:
                chunk = chunk.contiguous(memory_format=torch.channels_last)
            outputs.append(call(model, chunk).float().cpu().contiguous())
    return torch.cat(outputs) if outputs else torch.zeros(0)


def encode(model: nn.Module, images: Images, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """Flat codes [N, D] of the images."""
    if not hasattr(model, "encode"):
        raise CheckpointError(f"{type(model).__name__} has no encoder to encode with")
    # every autoencoder has its own encode(); torch types an nn.Module's unknown attributes as Tensor | Module
    return predict(model, images, lambda net, x: net.encode(x), batch_size, progress, "encode").numpy()  # type: ignore[operator]


def reconstruct(model: nn.Module, images: Images, batch_size: int = 128) -> Tensor:
    """The model's outputs in [0, 1] (float [N, C, H, W]): reconstructions, or denoised images for a denoiser."""
    return predict(model, images, lambda net, x: net(x).clamp(0, 1), batch_size)


def classify(model: nn.Module, images: Images, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """Predicted labels and class probabilities of a classifier."""
    probs = predict(model, images, lambda net, x: net(x).float().softmax(1), batch_size)
    return (probs.argmax(1) if len(probs) else torch.zeros(0, dtype=torch.long)), probs


def segment(model: nn.Module, image: Tensor) -> Tensor:
    """Class index map [H, W] (int64) of one image [C, H, W] at its own size."""
    return predict(model, image[None], lambda net, x: net(x).argmax(1).float())[0].long()


def upscale(model: nn.Module, image: Tensor) -> Tensor:
    """One image [C, H, W] upscaled by the model's scale, float in [0, 1]."""
    return predict(model, image[None], lambda net, x: net(x).clamp(0, 1))[0]


def sample(model: nn.Module, count: int, labels: list[int] | None = None, seed: int = 0) -> Tensor:
    """``count`` samples in [0, 1] of a VAE/DCGAN; a conditional one cycles ``labels`` (default: every class in turn)."""
    if not hasattr(model, "sample"):
        raise CheckpointError(f"{type(model).__name__} is not a generative model (VAE, cVAE, DCGAN, cDCGAN)")
    classes = getattr(model, "num_classes", 0)
    label_tensor = None
    if labels:
        if not classes:
            raise CheckpointError("--label needs a class-conditional model (cvae or cdcgan)")
        bad = [v for v in labels if not 0 <= v < classes]
        if bad:
            raise CheckpointError(f"class {bad[0]} is outside the model's {classes} classes (0..{classes - 1})")
        label_tensor = torch.tensor(labels).repeat(-(-count // len(labels)))[:count]
    device = next(model.parameters()).device
    with torch.inference_mode():
        return (
            cast("ConvVAE | DCGAN", model)
            .sample(count, label_tensor.to(device) if label_tensor is not None else None, generator=seeded(seed))
            .cpu()
        )


# ------------------------------------------------------------------------------------------- image files


def read_file(path: str | Path, channels: int) -> Tensor:
    """An image file as uint8 [C, H, W] at its own size; an unreadable file is a one-line error."""
    img, why = read_image(Path(path))
    if img is None:
        raise DataError(f"cannot read image '{path}': {why}")
    arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
    return torch.from_numpy((arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)).copy())


def read_images(paths: Sequence[str | Path], shape: Sequence[int], fit: str = "pad") -> Tensor:
    """Image files as uint8 [N, C, H, W] fitted to ``shape`` (channels, height, width)."""
    channels, size = shape[0], shape[1]
    arrays = []
    for path in paths:
        img, why = read_image(Path(path), reduce_to=size)  # JPEGs decoded as for training
        if img is None:
            raise DataError(f"cannot read image '{path}': {why}")
        arr = np.asarray(fit_square(img.convert("L" if channels == 1 else "RGB"), fit, size))
        arrays.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays)).contiguous()


def unfit(image: Tensor, fit: str, size: tuple[int, int]) -> Tensor:
    """Undo ``fit_square`` for a float [C, S, S] output: back to the input's ``size`` (width, height). ``pad``: the
    padding is cut off again; ``stretch``: resized; ``crop``: the centred square the model saw, at its own size."""
    import torch.nn.functional as F

    w, h = size
    side = max(w, h) if fit == "pad" else min(w, h) if fit == "crop" else None
    target = (h, w) if side is None else (side, side)
    out = F.interpolate(image[None].float(), size=target, mode="bilinear", align_corners=False, antialias=True)[0]
    if fit == "pad":
        left, top = (side - w) // 2, (side - h) // 2  # type: ignore[operator]
        out = out[:, top : top + h, left : left + w]
    return out.clamp(0, 1)


def to_uint8(image: Tensor) -> np.ndarray:
    """One float [C, H, W] image in [0, 1] as uint8 [H, W] (grey) or [H, W, 3], as image files hold it."""
    return (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).cpu().numpy()


def save_png(image: Tensor | np.ndarray, path: Path) -> Path:
    """A float [C, H, W] image in [0, 1] (or a uint8 array) as an 8-bit PNG."""
    from PIL import Image

    Image.fromarray(to_uint8(image) if isinstance(image, Tensor) else image).save(path)
    return path


def output_folder(run: str | Path) -> Path:
    """Where outputs made with a trained model go by default: its run folder (also for one of its checkpoints), or
    ``<name>-outputs`` beside a checkpoint file that lives outside a run folder."""
    return run_folder_of(run) or Path(run).with_name(f"{Path(run).stem}-outputs")


# ------------------------------------------------------------------------------------------- a run's own data


def run_splits(run: str | Path | RunFolder) -> Splits:
    """The train/val/test splits a run was trained on, made again from its recorded data settings and seed.

    Works for a run folder or a checkpoint; refuses runs trained on splits made in memory (``compare``), whose
    images cannot be told apart again from their settings.
    """
    path = run.path if isinstance(run, RunFolder) else Path(run)
    meta = read_meta(path)
    recorded = meta.get("splits")
    if recorded is None and "splits" in meta:
        raise DataError(
            f"'{path}' was trained on splits made in memory (e.g. by compare); give --dataset to name the images to use"
        )
    seed = recorded["seed"] if recorded else _seed_from_run_folder(checkpoint_file(path))
    data = DataConfig.model_validate((recorded or {}).get("data") or meta.get("data") or {})
    return make_splits(seed=seed, **data.split_options())


def _seed_from_run_folder(checkpoint: Path) -> int:
    """Checkpoints written before the split seed was recorded: the seed is in their run folder's config.yaml."""
    config = checkpoint.parent.parent / "config.yaml"
    if config.is_file():
        return load_config(config).train.seed
    warnings.warn(f"'{checkpoint}' does not record its split seed and has no run folder; assuming seed 0", stacklevel=3)
    return 0


def dataset_split(
    model_path: str | Path, meta: dict[str, Any], split: str = "test", dataset: str | None = None, data_root: str | None = None
) -> ImageSet:
    """``split`` (train, val or test) of the run's own splits, or of another ``dataset`` in the model's image shape."""
    if dataset is None:
        splits = run_splits(model_path)
        part = {"train": splits.train, "val": splits.val, "test": splits.test}[split]
        if part is None:
            raise DataError(f"the run '{model_path}' has no {split} split")
        return part
    c, h, _ = meta["image_shape"]
    data = load_dataset(dataset, "train" if split == "train" else "test", root=data_root, image_size=h, channels=c)
    if data is None:  # a set without its own test split: carve one by seed 0
        splits = make_splits(dataset, data_root, h, c, val_fraction=0)
        data = splits.train if split == "train" else splits.test
        assert data is not None  # make_splits always has a test split
    return data


__all__ = [
    "classify",
    "dataset_split",
    "encode",
    "load",
    "output_folder",
    "predict",
    "read_file",
    "read_images",
    "reconstruct",
    "run_splits",
    "sample",
    "save_png",
    "segment",
    "to_uint8",
    "unfit",
    "upscale",
]
