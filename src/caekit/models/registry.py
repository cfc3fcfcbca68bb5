"""The model registry and ``create_model``, timm-style: every family registers small builder functions."""

from __future__ import annotations

from typing import Any

from torch import nn

from caekit.registry import Registry

MODELS: Registry = Registry("model")
register_model = MODELS.register


def create_model(name: str, pretrained: str | bool | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model, e.g. ``create_model("cae32")`` or ``create_model("cae", spec="my.yaml")``.

    ``pretrained="mnist"`` (or True for its first entry) loads the weights the model zoo ships for it, checked
    against their sha256 (``caekit models --pretrained`` lists them). A builder with a ``pretrained`` argument of its
    own (``encoder_classifier``: a run folder) is given it instead.
    """
    import caekit.models  # noqa: F401  (registers the families)

    if pretrained is None or pretrained is False:
        return MODELS.build(name, **kwargs)
    if "pretrained" in MODELS.parameters(name):
        return MODELS.build(name, pretrained=pretrained, **kwargs)
    from caekit.models.pretrained import build_pretrained

    return build_pretrained(name, pretrained, MODELS.build, **kwargs)


def list_models() -> list[str]:
    import caekit.models  # noqa: F401

    return MODELS.names()
