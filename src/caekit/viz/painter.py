"""What objectives draw with: the run assembly hands this module to ``Objective.pictures`` as its painter, so the
training layer never imports matplotlib (see ``caekit.training.objectives.Painter``)."""

from caekit.viz import image_rows, reconstructions
from caekit.viz.generative import epoch_rows, gan_curves, interpolation, manifold, sample_grid
from caekit.viz.pixelwise import segmentation_overlays, superres_rows

__all__ = [
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
