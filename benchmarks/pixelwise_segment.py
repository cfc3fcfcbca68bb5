"""Segmentation on the digit-canvas set: SegNet, U-Net, DeconvNet and the FCN baseline, and the upsampling kinds.

Prints two Markdown tables (mean IoU per model; one network with four upsampling kinds), computed on the whole
digit-canvas test split (2,000 canvases from MNIST's test digits) from one confusion matrix, and draws overlays and
per-class IoU bars into benchmarks/results/pixelwise/. Sized for a small shared CPU: see the options.

    python benchmarks/pixelwise_segment.py --root /work/data --size 48 --width 8 --limit 2000 --epochs 4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from caekit.api import train
from caekit.evaluate.segmentation import evaluate_segmentation
from caekit.viz.pixelwise import iou_bars, segmentation_overlays

OUT = Path(__file__).parent / "results" / "pixelwise"
DEFAULT_UPSAMPLE = {"segnet": "max", "unet": "transposed", "deconvnet": "max", "fcn": "bilinear"}


def run(name: str, args: argparse.Namespace, **model_args: object) -> dict[str, object]:
    name += args.tag
    config = {
        "name": name,
        "runs_dir": args.runs_dir,
        "model": {"name": model_args.pop("model"), "args": {"width": args.width, "depth": args.depth, **model_args}},
        "data": {"name": "digit-canvas", "root": args.root, "image_size": args.size, "limit": args.limit, "val_fraction": 0.1},
        "objective": {"name": "segment", "args": {"dice": args.dice}},
        "optim": {"lr": args.lr},
        "train": {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed, "progress": False},
    }
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start
    test = result.splits.test
    scores = evaluate_segmentation(result.model, test.images, test.extras["mask"], test.classes)
    with torch.inference_mode():
        preds = result.model(test.unit_images(0, 8)).argmax(1)
    segmentation_overlays(
        test.unit_images(0, 8),
        preds,
        OUT / f"overlay-{name}.png",
        test.classes,
        test.extras["mask"][:8],
        title=f"{name}: mean IoU {scores.mean_iou:.3f}",
    )
    params = sum(p.numel() for p in result.model.parameters())
    row = {
        "name": name,
        "mean_iou": scores.mean_iou,
        "pixel_accuracy": scores.pixel_accuracy,
        "iou": scores.iou,
        "params": params,
        "seconds": seconds,
        "train_images": len(result.splits.train),
        "epochs": len(result.history),
    }
    print(f"{name}: mean IoU {scores.mean_iou:.3f}, pixel accuracy {scores.pixel_accuracy:.3f}, {seconds:.0f} s", flush=True)
    return row


def table(rows: list[dict[str, object]], title: str) -> str:
    lines = [
        f"**{title}**",
        "",
        "| model | mean IoU | digit-class mean IoU | background IoU | pixel accuracy | params | train s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        iou = r["iou"]
        digits = [v for k, v in iou.items() if k != "background"]  # type: ignore[union-attr]
        lines.append(
            f"| {r['name']} | {r['mean_iou']:.3f} | {sum(digits) / len(digits):.3f} | {iou['background']:.3f} | "  # type: ignore[index]
            f"{r['pixel_accuracy']:.3f} | {r['params']:,} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/data", help="folder holding MNIST/raw")
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--limit", type=int, default=2000, help="training canvases (of 12,000)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--dice", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=["models", "kinds", "both"], default="both")
    parser.add_argument("--kinds-model", default="segnet")
    parser.add_argument("--kinds", nargs="+", default=["max", "fixed", "bilinear", "transposed"])
    parser.add_argument("--tag", default="", help="suffix for the output files, to keep several budgets apart")
    parser.add_argument("--runs-dir", default="/tmp/caekit-pixelwise-bench")
    args = parser.parse_args()
    torch.set_num_threads(1)  # on a small shared CPU, one thread per process avoids spin-wait contention
    results: dict[str, list] = {}
    if args.part in ("models", "both"):
        rows = [run(m, args, model=m) for m in ("segnet", "unet", "deconvnet", "fcn")]
        results["models"] = rows
        print(table(rows, "Digit-canvas test split: models (default upsampling each)"), flush=True)
        iou_bars([(r["name"], r["iou"]) for r in rows], OUT / f"iou-models{args.tag}.png", "digit-canvas per-class IoU")
        (OUT / f"segment-models{args.tag}.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    if args.part in ("kinds", "both"):
        done = {r["name"]: r for r in results.get("models", [])}
        rows = []
        for kind in args.kinds:
            if kind == DEFAULT_UPSAMPLE[args.kinds_model] and args.kinds_model in done:  # the models table ran it already
                rows.append({**done[args.kinds_model], "name": f"{args.kinds_model}-{kind}"})
            else:
                rows.append(run(f"{args.kinds_model}-{kind}", args, model=args.kinds_model, upsample=kind))
        results["kinds"] = rows
        print(table(rows, f"Digit-canvas test split: {args.kinds_model} with four upsampling kinds"), flush=True)
        iou_bars(
            [(r["name"], r["iou"]) for r in rows],
            OUT / f"iou-kinds-{args.kinds_model}{args.tag}.png",
            "upsampling kinds: per-class IoU",
        )
        (OUT / f"segment-kinds-{args.kinds_model}{args.tag}.json").write_text(
            json.dumps({"args": vars(args), "rows": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
