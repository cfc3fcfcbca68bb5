"""Model families, one file each; importing this package registers them all."""

import importlib

from caekit.models.cae import ConvAutoencoder, EncoderOutput
from caekit.models.registry import MODELS, create_model, list_models, register_model

FAMILIES = (
    "cae",
    "backbones",
    "stacked",
    "vae",
    "gan",
    "encoder_classifier",
    "baselines",
    "backbone_ae",
    "segnet",
    "unet",
    "deconvnet",
    "fcn",
)
for _family in FAMILIES:
    importlib.import_module(f"caekit.models.{_family}")

__all__ = ["MODELS", "ConvAutoencoder", "EncoderOutput", "create_model", "list_models", "register_model"]
