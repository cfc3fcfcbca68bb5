"""Pixel-wise commands: `caekit segment` (class masks of image files) and `caekit upscale` (super-resolution)."""

from __future__ import annotations

import click

from caekit.cli.options import image_files_and_model

COMMANDS: list[click.Command] = []


@click.command()
@image_files_and_model("segmentations")
@click.option("--masks", "mask_dir", type=click.Path(exists=True, file_okay=False),
              help="Folder of ground-truth masks with the images' names: adds them to the overlays and scores them.")
def segment(images: tuple[str, ...], run: str, out: str, mask_dir: str | None) -> None:
    """Segment image files at their own size: NAME_mask.png (class indices), NAME_overlay.png, overlays.png."""
    from caekit.api import segment_files

    report = segment_files(images, run, out, mask_dir)
    click.echo(f"{len(images)} masks and {report['overlays']} written to {out}")
    if "mean_iou" in report:
        click.echo(f"mean IoU {report['mean_iou']:.4f}, pixel accuracy {report['pixel_accuracy']:.4f} (scores.json, iou.png)")


@click.command()
@image_files_and_model("upscaled")
def upscale(images: tuple[str, ...], run: str, out: str) -> None:
    """Upscale image files by the model's scale: NAME_xS.png, NAME_bicubic.png and comparison.png."""
    from caekit.api import upscale_files

    scale, picture = upscale_files(images, run, out)
    click.echo(f"{len(images)} images upscaled x{scale} and {picture} written to {out}")


COMMANDS += [segment, upscale]
