"""Digit-canvas segmentation set and image/mask folders (filled in by the pixel-wise issue)."""
