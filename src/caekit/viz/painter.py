"""What objectives draw with: the run assembly hands this module (or a ``Titled`` painter over it) to
``Objective.pictures``, so the training layer never imports matplotlib (see ``caekit.training.objectives.Painter``)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from caekit.viz import image_rows, reconstructions
from caekit.viz.generative import epoch_rows, gan_curves, interpolation, manifold, sample_grid
from caekit.viz.pixelwise import segmentation_overlays, superres_rows


class Titled:
    """This module's pictures with ``suffix`` (e.g. the run and its epoch) in every title: a picture that takes a
    title and got none is titled ``suffix``, one that got a title gets ``title (suffix)``."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in __all__ or name == "Titled":
            raise AttributeError(name)
        draw = getattr(sys.modules[__name__], name)
        if "title" not in inspect.signature(draw).parameters:
            return draw

        def titled(*args: Any, **kwargs: Any) -> Any:
            bound = inspect.signature(draw).bind(*args, **kwargs)
            given = bound.arguments.get("title")
            bound.arguments["title"] = f"{given} ({self.suffix})" if given else self.suffix
            return draw(*bound.args, **bound.kwargs)

        return titled


__all__ = [
    "Titled",
    "epoch_rows",
    "gan_curves",
    "image_rows",
    "interpolation",
    "manifold",
    "reconstructions",
    "sample_grid",
    "segmentation_overlays",
    "superres_rows",
]
