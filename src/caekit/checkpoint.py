"""Checkpoints as safetensors plus JSON: nothing is ever unpickled, and every write is atomic.

The JSON metadata (model name and arguments, spec, dataset, normalisation, epoch, optimiser settings, history) is
embedded in the safetensors header, so tensors and metadata can never disagree, and also written beside it as
``<name>.json`` for people and tools. Optimiser state is flattened into tensors plus JSON.

A file-format leaf: it knows the run folder's checkpoint names (``checkpoints/best|last.safetensors``) but nothing
of models, data or training.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from caekit.errors import CheckpointError
from caekit.fileio import atomic_write_text, publish

META_KEY = "caekit"
FORMAT = "caekit-checkpoint-1"
NORMALISATION = {"input": "uint8 / 255", "range": [0.0, 1.0]}


def model_meta(
    model_name: str,
    model_args: dict[str, Any],
    spec: dict[str, Any] | None,
    objective: dict[str, Any],
    data: dict[str, Any],
    classes: list[str],
    image_shape: tuple[int, ...] | list[int],
) -> dict[str, Any]:
    """The metadata every model checkpoint carries: what to build, what it was trained on and how inputs are scaled."""
    return {
        "format": FORMAT,
        "model": {"name": model_name, "args": model_args},
        "spec": spec,
        "objective": objective,
        "data": data,
        "classes": list(classes),
        "image_shape": list(image_shape),
        "normalisation": NORMALISATION,
        "provenance": provenance(),
    }


@functools.cache
def source_commit() -> str | None:
    """The git commit of caekit's own source when it runs from a caekit checkout (an editable install), with
    ``+changes`` when tracked files differ from it; None for an installed wheel."""
    import subprocess

    source = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() / "src" / "caekit" != source:  # a wheel inside someone else's repository
        return None
    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return None
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def provenance() -> dict[str, str]:
    """Who made a checkpoint: caekit, torch and torchvision versions, caekit's git commit when it runs from a
    checkout, the command line, host and date (UTC)."""
    import platform
    import sys
    import time
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    made = {
        "caekit": installed("caekit"),
        "torch": torch.__version__,
        "torchvision": installed("torchvision"),
        "python": platform.python_version(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
        "host": platform.node(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    commit = source_commit()
    if commit:
        made["commit"] = commit
    return made


def checkpoint_file(path: str | Path) -> Path:
    """A .safetensors file as given, or a run folder's best checkpoint (its last when no epoch improved yet)."""
    path = Path(path)
    if not path.is_dir():
        return path
    for which in ("best", "last"):
        candidate = path / "checkpoints" / f"{which}.safetensors"
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"run '{path}' has no checkpoint yet")


def _flatten_optimizer(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{name}.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(name: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            index, field = key[len(prefix) :].split(".", 1)
            state.setdefault(int(index), {})[field] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    meta: dict[str, Any],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    extra: dict[str, Tensor] | None = None,
    sidecar: bool = True,
) -> Path:
    """Write ``path`` (.safetensors) and (with ``sidecar``) its JSON sidecar atomically; returns the safetensors path."""
    path = Path(path).with_suffix(".safetensors")
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = dict(meta)
    meta["optimizers"] = {}
    for name, optimizer in (optimizers or {}).items():
        opt_tensors, opt_meta = _flatten_optimizer(name, optimizer)
        tensors.update({k: v.detach().cpu().contiguous() for k, v in opt_tensors.items()})
        meta["optimizers"][name] = opt_meta
    tensors.update({f"extra.{k}": v.detach().cpu().contiguous() for k, v in (extra or {}).items()})
    text = json.dumps(meta, indent=1, default=_json_default)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        try:
            save_file(tensors, tmp, metadata={META_KEY: text})
        except SafetensorError as exc:  # its I/O errors (a full disk) are OS errors to the user: one line, not a bug
            code = int(m.group(1)) if (m := re.search(r"os error (\d+)", str(exc))) else errno.EIO
            raise OSError(code, os.strerror(code), str(path)) from exc
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sidecar:
        atomic_write_text(path.with_suffix(".json"), text)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in checkpoint metadata")


def _read(path: str | Path, with_tensors: bool) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The checks and the header parsing that ``read_checkpoint`` and ``read_meta`` share."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"'{path}' is not a safetensors checkpoint: give a caekit run folder or its .safetensors file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            names = f.keys() if with_tensors else []  # safe_open is not iterable
            tensors = {key: f.get_tensor(key) for key in names}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"'{path}' is not a readable safetensors checkpoint ({exc})") from None
    if META_KEY not in header:
        raise CheckpointError(f"'{path}' has no caekit metadata; it was not written by caekit")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"'{path}': its caekit metadata is not JSON ({exc.msg} at character {exc.pos}); the file is damaged"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"'{path}': its caekit metadata is a {type(meta).__name__}, not a mapping; the file is damaged")
    return tensors, meta


def read_checkpoint(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """All tensors (on CPU) and the metadata of a checkpoint (or a run folder's best); refuses anything not safetensors."""
    return _read(path, with_tensors=True)


def read_meta(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata alone, without reading its tensors."""
    return _read(path, with_tensors=False)[1]


def model_state(tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}


def mismatch(own: dict[str, Tensor], state: dict[str, Tensor], unexpected_too: bool = True) -> str:
    """What keeps ``state`` from loading into a model whose state dict is ``own`` ("" when it loads exactly)."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own] if unexpected_too else []
    resized = [
        f"{k} {tuple(state[k].shape)} here {tuple(v.shape)}" for k, v in own.items() if k in state and state[k].shape != v.shape
    ]
    return "; ".join(
        f"{what} {names[:3]}"
        for what, names in (("missing", missing), ("unexpected", unexpected), ("other shapes", resized))
        if names
    )


def restore(
    tensors: dict[str, Tensor], meta: dict[str, Any], model: nn.Module, optimizers: dict[str, torch.optim.Optimizer] | None = None
) -> dict[str, Tensor]:
    """Load weights (and optimiser states) in place; returns the checkpoint's extra tensors."""
    state = model_state(tensors)
    found = mismatch(model.state_dict(), state)
    if found:
        raise CheckpointError(
            f"checkpoint does not fit the model its settings build (written by another caekit version?): {found}"
        )
    model.load_state_dict(state)
    for name, optimizer in (optimizers or {}).items():
        if name in meta.get("optimizers", {}):
            optimizer.load_state_dict(_unflatten_optimizer(name, tensors, meta["optimizers"][name]))
    return {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
