"""The model registry and ``create_model``, timm-style: every family registers small builder functions."""

from __future__ import annotations

from typing import Any

from torch import nn

from caekit.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("cae32")`` or ``create_model("cae", spec="my.yaml")``."""
    import caekit.models  # noqa: F401  (registers the families)

    return MODELS.build(name, **kwargs)


def list_models() -> list[str]:
    import caekit.models  # noqa: F401

    return MODELS.names()
