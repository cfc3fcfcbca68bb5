"""Model families, one file each; importing this package registers them all."""

from caekit.models import cae  # noqa: F401
from caekit.models.cae import ConvAutoencoder, EncoderOutput
from caekit.models.registry import MODELS, create_model, list_models, register_model

__all__ = ["MODELS", "ConvAutoencoder", "EncoderOutput", "create_model", "list_models", "register_model"]
