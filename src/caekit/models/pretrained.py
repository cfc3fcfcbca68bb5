"""The model zoo that ships with caekit: small pretrained weights, each with what it was trained on and scores.

Each entry is a ``PretrainedCfg`` (timm's ``pretrained_cfg``): the model and its builder arguments, the data and
its input shape and normalisation, the test metric it reaches, the sha256 of its weights file and the command that
made it (``scripts/make_zoo.py``). Weights are plain safetensors state dicts in ``caekit/models/zoo/``, listed in
``zoo/index.json``; nothing is downloaded, and a file whose sha256 differs from the index is refused.

    create_model("cae28", pretrained="mnist")       # or pretrained=True for the model's first entry
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from caekit.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from torch import nn

ZOO = Path(__file__).parent / "zoo"
INDEX = ZOO / "index.json"


@dataclass(frozen=True)
class PretrainedCfg:
    """One set of pretrained weights: what it is, what it was trained on, how well it does, how it was made."""

    model: str
    tag: str  # what ``pretrained=`` names: the data it was trained on, e.g. "mnist"
    file: str
    sha256: str
    input_shape: tuple[int, int, int]
    data: str  # the training data and split, in words
    normalisation: str  # what the model expects of its input
    metric: str  # the test metric's name
    value: float  # its value on ``test``
    test: str  # which test images, in words
    args: dict[str, Any] = field(default_factory=dict)  # the builder's arguments besides input_shape
    objective: str = "reconstruct"
    command: str = ""

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"


def pretrained_cfgs() -> list[PretrainedCfg]:
    """Every zoo entry, in the index's order (reads one JSON file; imports no torch)."""
    if not INDEX.is_file():
        return []
    entries = json.loads(INDEX.read_text())
    return [PretrainedCfg(**{**e, "input_shape": tuple(e["input_shape"])}) for e in entries]


def pretrained_cfg(model: str, tag: str | bool) -> PretrainedCfg:
    """The entry for ``model`` trained on ``tag`` (True: the model's first entry); ConfigError naming the choices."""
    mine = [cfg for cfg in pretrained_cfgs() if cfg.model == model]
    if not mine:
        have = sorted({cfg.model for cfg in pretrained_cfgs()})
        raise ConfigError(f"model '{model}' has no pretrained weights; these do: {', '.join(have) or 'none'}")
    if tag is True:
        return mine[0]
    for cfg in mine:
        if cfg.tag == tag:
            return cfg
    raise ConfigError(f"model '{model}' has no pretrained weights '{tag}'; choose one of: {', '.join(c.tag for c in mine)}")


def _checked_file(cfg: PretrainedCfg) -> Path:
    path = ZOO / cfg.file
    if not path.is_file():
        raise CheckpointError(f"the weights of {cfg.name} ({path}) are missing; reinstall caekit")
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if digest != cfg.sha256:
        raise CheckpointError(f"the weights of {cfg.name} ({path}) do not match their sha256 in the index; reinstall caekit")
    return path


def _check_arguments(cfg: PretrainedCfg, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The entry's builder arguments; ConfigError where ``kwargs`` would change one of them."""
    args = {**cfg.args, "input_shape": list(cfg.input_shape)}
    for key, value in kwargs.items():
        wanted = list(value) if isinstance(value, tuple) else value
        if key in args and args[key] != wanted:
            shown = "x".join(map(str, value)) if key == "input_shape" else repr(value)
            given = "x".join(map(str, args[key])) if key == "input_shape" else repr(args[key])
            raise ConfigError(
                f"{cfg.name} was trained with {key} {given}; it cannot take {shown} (for images: --image-size and "
                "--channels to match, or train without --pretrained)"
            )
    return args


def build_pretrained(model: str, tag: str | bool, build: Any, **kwargs: Any) -> nn.Module:
    """``build(model, **args)`` with the entry's arguments (``kwargs`` may add others, not change them), then its
    weights, checked against their sha256; in eval mode."""
    cfg = pretrained_cfg(model, tag)
    args = _check_arguments(cfg, kwargs)
    path = _checked_file(cfg)
    from caekit.models.weights import load_weights

    return load_weights(build(model, **{**args, **kwargs}), path, "exact").eval()


def load_pretrained(net: nn.Module, model: str, tag: str | bool, args: dict[str, Any]) -> PretrainedCfg:
    """Load the zoo's weights into ``net``, built as ``model`` with ``args`` (a run that starts from them)."""
    cfg = pretrained_cfg(model, tag)
    _check_arguments(cfg, args)
    from caekit.models.weights import load_weights

    load_weights(net, _checked_file(cfg), "exact")
    return cfg


__all__ = ["PretrainedCfg", "build_pretrained", "load_pretrained", "pretrained_cfg", "pretrained_cfgs"]
