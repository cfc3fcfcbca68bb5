"""caekit: convolutional autoencoders on real images.

The Python API mirrors the command line: ``train``, ``load``, ``encode``, ``reconstruct``; models come from
``create_model`` (a preset name such as ``"cae32"`` or ``"cae"`` with a spec).
"""

from caekit.api import TrainResult, encode, load, read_images, reconstruct, train
from caekit.config import RunConfig, load_config
from caekit.models import create_model, list_models
from caekit.spec import AutoencoderSpec, load_spec, plan

__version__ = "0.1.0"

__all__ = ["AutoencoderSpec", "RunConfig", "TrainResult", "create_model", "encode", "list_models", "load", "load_config",
           "load_spec", "plan", "read_images", "reconstruct", "train"]
