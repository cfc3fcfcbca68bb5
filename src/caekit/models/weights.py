"""The one weight loader: trained caekit models and plain state dicts, both from safetensors, nothing unpickled."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from caekit.checkpoint import FORMAT, META_KEY, checkpoint_file, mismatch, model_state, read_checkpoint, restore
from caekit.errors import CaekitError, CheckpointError
from caekit.fileio import physical_memory
from caekit.models.registry import create_model

Policy = Literal["exact", "subset", "fitting"]


def load_trained(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model a caekit checkpoint (or a run folder's best checkpoint) describes, with its weights, in eval mode."""
    tensors, meta = read_checkpoint(path)
    where = checkpoint_file(path)
    if meta.get("format") != FORMAT or not isinstance(meta.get("model"), dict):
        raise CheckpointError(f"'{where}' is not a caekit model checkpoint")
    name, args, shape = meta["model"].get("name"), meta["model"].get("args"), meta.get("image_shape")
    if not isinstance(name, str) or not isinstance(args, dict):
        raise CheckpointError(
            f"'{where}': its metadata does not say which model it holds (model.name, model.args); the file is damaged"
        )
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and 0 < v <= 4096 for v in shape)):
        raise CheckpointError(f"'{where}': its image_shape {shape!r} is not [channels, height, width]; the file is damaged")
    model = create_checked(name, args, f"'{where}'")
    restore(tensors, meta, model)
    return model.eval(), meta


def create_checked(name: str, args: dict[str, Any], source: str) -> nn.Module:
    """``create_model`` after building it on the meta device first (no memory) and checking that its parameters fit
    in half of this machine's memory: a damaged or hostile file cannot make caekit allocate terabytes."""
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # weights a builder loads into the shell: a no-op, said by torch, not news
            shell = create_model(name, **args)
        size = sum(p.numel() * p.element_size() for p in shell.parameters()) + sum(
            b.numel() * b.element_size() for b in shell.buffers()
        )
    except CaekitError:
        raise
    except Exception:
        size = 0
    limit = physical_memory() // 2
    if size > limit:
        raise CheckpointError(
            f"{source}: model '{name}' would need {size / 2**30:,.1f} GB for its parameters, more than half of "
            f"this machine's {physical_memory() / 2**30:,.0f} GB"
        )
    return create_model(name, **args)


def state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """The model tensors of a safetensors file: a caekit checkpoint's (``model.*``, run folders too) or a plain state dict."""
    path = checkpoint_file(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise CheckpointError(f"weights must be a local .safetensors file or a caekit run folder; '{path}' is neither")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            is_checkpoint = META_KEY in (f.metadata() or {})
        return model_state(read_checkpoint(path)[0]) if is_checkpoint else load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({exc})") from None


def load_weights(model: nn.Module, source: str | Path, policy: Policy = "exact") -> nn.Module:
    """Load ``source``'s tensors into ``model`` in place.

    ``exact``: every tensor must match; ``subset``: every tensor of the model must be there, extra ones are ignored
    (a torchvision classifier's head under a backbone); ``fitting``: take what fits by name and shape and warn about
    the rest (an adapted stem, another number of classes).
    """
    state, own = state_dict_file(source), model.state_dict()
    if policy == "fitting":
        fitting = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
        if not fitting:
            raise CheckpointError(f"no tensor in '{source}' fits {type(model).__name__}")
        skipped = sorted(set(own) - set(fitting))
        if skipped:
            warnings.warn(
                f"{len(skipped)} tensors not taken from '{Path(source).name}' (adapted or missing): {', '.join(skipped[:4])}",
                stacklevel=2,
            )
        model.load_state_dict(fitting, strict=False)
        return model
    found = mismatch(own, state, unexpected_too=policy == "exact")
    if found:
        raise CheckpointError(f"'{source}' does not hold the weights of this {type(model).__name__}: {found}")
    model.load_state_dict({k: state[k] for k in own})
    return model


__all__ = ["create_checked", "load_trained", "load_weights", "state_dict_file"]
