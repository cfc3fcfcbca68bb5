"""Pixel-wise commands: `caekit segment` (class masks of image files) and `caekit upscale` (super-resolution)."""

from __future__ import annotations

import click

from caekit.cli.options import image_files_and_run, run_on_files

COMMANDS: list[click.Command] = []


@click.command()
@image_files_and_run("the masks and overlays")
@click.option(
    "--masks",
    "mask_dir",
    type=click.Path(exists=True, file_okay=False),
    help="Folder of ground-truth masks with the images' names: adds them to the overlays and scores them.",
)
def segment(images: tuple[str, ...], run: str, out: str | None, mask_dir: str | None) -> None:
    """Segment image files at their own size: NAME_mask.png (class indices), NAME_overlay.png, overlays.png."""
    run_on_files("segment_files", images, run, out, masks=mask_dir)


@click.command()
@image_files_and_run("the upscaled images and comparison.png")
def upscale(images: tuple[str, ...], run: str, out: str | None) -> None:
    """Upscale image files by the model's scale: NAME_xS.png, NAME_bicubic.png and comparison.png."""
    run_on_files("upscale_files", images, run, out)


COMMANDS += [segment, upscale]
