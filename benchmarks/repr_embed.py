"""Codes of a trained autoencoder, looked at: t-SNE/PCA maps, a checked projector bundle, and clustering of the
codes vs raw pixels vs PCA of pixels (NMI, ARI, Hungarian cluster accuracy). Prints Markdown.

    python benchmarks/repr_embed.py RUN --dataset mnist --root /work/data --points 2000 --out OUT
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import torch

from caekit.data.splits import make_splits, split
from caekit.evaluate.cluster import compare_clusterings, rows_to_markdown
from caekit.evaluate.embed import check_projector, embed
from caekit.inference import encode, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--root")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--out", default="embedding")
    parser.add_argument("--pictures", help="Copy the map pictures here too.")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, meta = load(args.run)
    c, h, _ = meta["image_shape"]
    test = make_splits(args.dataset, args.root, h, c, val_fraction=0).test
    start = time.time()
    result = embed(model, test, args.out, max_points=args.points, thumbnails=30, progress=False)
    found = check_projector(Path(args.out) / "projector")
    print(
        f"embedding of {len(result.codes)} {args.dataset} test images ({time.time() - start:.0f} s): "
        f"projector {found['points']} x {found['dims']}, sprite {found['sprite']} of {found['thumb']} thumbnails"
    )
    data = test if len(test) <= args.points else split(test, 1 - args.points / len(test), 0)[0]
    codes = encode(model, data)
    rows = compare_clusterings(
        codes, data.images.numpy(), data.labels.numpy(), methods=("kmeans", "agglomerative"), max_points=None
    )
    print(f"\n{args.dataset} test, {len(data)} images, k = {len(data.classes)}\n\n{rows_to_markdown(rows)}")
    if args.pictures:
        Path(args.pictures).mkdir(parents=True, exist_ok=True)
        for name in ("tsne", "pca"):
            shutil.copy(result.paths[name], Path(args.pictures) / f"{args.dataset}-{name}.png")


if __name__ == "__main__":
    main()
