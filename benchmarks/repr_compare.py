"""Run a comparison config on a subset of its models, shrunk for a CPU, and print the Markdown table.

    python benchmarks/repr_compare.py configs/compare-mnist.yaml --only "LeNet-5|ResNet-18" \
        --set data.limit=12000 --set train.epochs=3 --threads 1

(``caekit compare`` runs a whole config; this script only adds model selection and a thread count.)
"""

from __future__ import annotations

import argparse
import time

import torch
import yaml

from caekit.config import parse_assignments
from caekit.workflows.compare import load_compare_config, run_compare, summary_markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--only", help='Model labels to keep, separated by "|" (default: all).')
    parser.add_argument("--set", dest="sets", action="append", default=[], help="Dotted override, e.g. train.epochs=3.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with open(args.config) as f:
        raw = yaml.safe_load(f)
    if args.only:
        keep = [label.strip() for label in args.only.split("|")]
        raw["models"] = [m for m in raw["models"] if m["label"] in keep]
        missing = set(keep) - {m["label"] for m in raw["models"]}
        if missing:
            raise SystemExit(f"no such models: {', '.join(sorted(missing))}")
    config = load_compare_config(raw, parse_assignments(args.sets))
    start = time.time()
    result = run_compare(config)
    print(f"\n{summary_markdown(result.summary)}\n\n({time.time() - start:.0f} s; folder {result.folder})")


if __name__ == "__main__":
    main()
