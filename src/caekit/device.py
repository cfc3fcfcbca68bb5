"""Choosing the device a model runs on."""

from __future__ import annotations

import torch

from caekit.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is the GPU when there is one; asking for a GPU that is not there is a one-line error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu")
    return device
