"""caekit: convolutional autoencoders on real images.

The Python API mirrors the command line: ``train``, ``load``, ``encode``, ``reconstruct``; models come from
``create_model`` (a preset name such as ``"cae32"`` or ``"cae"`` with a spec). Importing caekit is cheap: torch and
the rest load on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Callback": "caekit.training.callbacks",
    "TrainResult": "caekit.runner",
    "train": "caekit.api",
    "evaluate_run": "caekit.runner",
    "encode": "caekit.inference",
    "load": "caekit.inference",
    "read_images": "caekit.inference",
    "reconstruct": "caekit.inference",
    "run_splits": "caekit.inference",
    "RunConfig": "caekit.config",
    "load_config": "caekit.config",
    "create_model": "caekit.models",
    "list_models": "caekit.models",
    "AutoencoderSpec": "caekit.spec",
    "load_spec": "caekit.spec",
    "plan": "caekit.spec",
    "load_plugins": "caekit.plugins",
}

if TYPE_CHECKING:
    from caekit.api import train
    from caekit.config import RunConfig, load_config
    from caekit.inference import encode, load, read_images, reconstruct, run_splits
    from caekit.models import create_model, list_models
    from caekit.plugins import load_plugins
    from caekit.runner import TrainResult, evaluate_run
    from caekit.spec import AutoencoderSpec, load_spec, plan
    from caekit.training.callbacks import Callback


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'caekit' has no attribute '{name}'")


__all__ = [
    "AutoencoderSpec",
    "Callback",
    "RunConfig",
    "TrainResult",
    "create_model",
    "encode",
    "evaluate_run",
    "list_models",
    "load",
    "load_config",
    "load_plugins",
    "load_spec",
    "plan",
    "read_images",
    "reconstruct",
    "run_splits",
    "train",
]
