"""Execute the tutorial notebooks (notebooks/*.ipynb) top to bottom, as `make notebooks` and CI do.

Each notebook runs with nbclient on a python3 kernel of this interpreter (ipykernel's own kernel spec, so a
"python3" kernel registered elsewhere cannot stand in), in a fresh temporary working directory (its runs/ folder
goes there), with CAEKIT_SHARED_DATA and CAEKIT_MNIST_ROOT set: from the environment, else <repo>/../shared/data
and <repo>/data. The committed notebooks are only read, never written; ``--out DIR`` keeps the executed copies
(with their outputs) and each notebook's working directory under DIR.

A notebook names the data it needs in its metadata (``metadata.caekit.needs``); when some is missing it is skipped
with one line, ``skipped NAME: no WHAT``, and the exit status stays 0. A failing or timed-out cell makes the exit
status 1, naming the notebook and the cell.

    python scripts/run_notebooks.py                  # all of them, one line each with its wall time
    python scripts/run_notebooks.py --only 03 -v     # one notebook, with the time of every cell
    python scripts/run_notebooks.py --list           # names and the data each needs; runs nothing
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BUDGET_S = 90.0  # what each notebook should take on one CPU thread; a slower one is flagged, not failed


def default_shared() -> Path:
    return Path(os.environ.get("CAEKIT_SHARED_DATA") or ROOT.parent / "shared" / "data")


def default_mnist() -> Path:
    return Path(os.environ.get("CAEKIT_MNIST_ROOT") or ROOT / "data")


def data_needs(shared: Path, mnist: Path) -> dict[str, tuple[str, Path]]:
    """What a notebook may need: a name for its metadata -> (what to call it, the path that must exist)."""
    return {
        "cifar10-sample": ("CIFAR-10 sample", shared / "cifar10-sample"),
        "plankton-sample": ("plankton sample", shared / "plankton-sample"),
        "mnist": ("MNIST", mnist / "MNIST" / "raw" / "train-images-idx3-ubyte"),
    }


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The notebooks in name order; ``only`` keeps those whose file name or stem equals or starts with an entry."""
    found = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not only:
        return found
    return [p for p in found if any(p.name == o or p.stem == o or p.name.startswith(o) for o in only)]


def needs_of(path: Path) -> list[str]:
    """The data a notebook needs, from its metadata (plain JSON: no Jupyter import to list or skip)."""
    meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
    return list(meta.get("caekit", {}).get("needs", []))


def missing(path: Path, known: dict[str, tuple[str, Path]]) -> str | None:
    """What the notebook needs that is absent (``no CIFAR-10 sample at PATH``), or None when it can run."""
    for need in needs_of(path):
        if need not in known:
            raise SystemExit(f"{path.name}: unknown need '{need}' in metadata.caekit.needs; known: {', '.join(known)}")
        what, where = known[need]
        if not where.exists():
            return f"no {what} at {where}"
    return None


@dataclass
class Outcome:
    seconds: float
    error: str | None = None
    cells: list[tuple[int, float, str]] = field(default_factory=list)  # code cells run: (number, seconds, first line)


def _first_line(cell: Any) -> str:
    lines = [line for line in str(cell.get("source", "")).splitlines() if line.strip()]
    return lines[0][:60] if lines else "(empty)"


def execute(path: Path, workdir: Path, env: dict[str, str], timeout: int, keep: Path | None = None) -> Outcome:
    """Run one notebook in ``workdir`` on a fresh kernel; the notebook file itself is only read."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # no kernel directories: only ipykernel's built-in "python3" spec is found, which runs sys.executable
    manager = AsyncKernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[]))
    state: dict[str, Any] = {"index": None, "start": 0.0}
    outcome = Outcome(0.0)

    def on_start(cell: Any, cell_index: int) -> None:
        state.update(index=cell_index, start=time.perf_counter())

    def on_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
        outcome.cells.append((cell_index + 1, time.perf_counter() - state["start"], _first_line(cell)))

    client = NotebookClient(
        nb,
        km=manager,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
        on_cell_start=on_start,
        on_cell_executed=on_executed,
    )
    start = time.perf_counter()
    log = workdir / "kernel.log"  # the kernel's own stderr (start-up warnings, a crash), quoted when a run fails
    try:
        with log.open("w") as stderr:
            client.execute(env=env, stderr=stderr)
    except Exception as exc:  # a cell's error, a timeout, a dead kernel: all name the cell that was running
        index = state["index"]
        where = f"cell {index + 1} ({_first_line(nb.cells[index])!r})" if index is not None else "kernel start"
        if hasattr(exc, "ename"):  # CellExecutionError: the exception the cell raised
            detail = f"{exc.ename}: {exc.evalue}"
        else:  # a timeout, a dead kernel: the first line of nbclient's message
            detail = (str(exc).strip().splitlines() or [""])[0]
        outcome.error = f"{where}: {type(exc).__name__}: {detail}"
        if type(exc).__name__ == "DeadKernelError" and log.is_file():
            outcome.error += "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-10:])
    finally:
        if manager.has_kernel:  # nbclient shuts down only the kernels it made itself
            run_sync(manager.shutdown_kernel)(now=True)
    outcome.seconds = time.perf_counter() - start
    if keep is not None:
        nbformat.write(nb, keep / path.name)  # the executed copy, outputs and all, beside its working directory
    return outcome


def check_jupyter() -> str | None:
    """Why notebooks cannot run here, or None."""
    absent = [name for name in ("nbformat", "nbclient", "ipykernel") if importlib.util.find_spec(name) is None]
    if absent:
        return f"{', '.join(absent)} not installed: pip install -e '.[test]' (or: pip install nbclient nbformat ipykernel)"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print each notebook and the data it needs, run nothing")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this notebook (name, stem or prefix); repeatable"
    )
    parser.add_argument("--timeout", type=int, default=600, metavar="S", help="per-cell timeout in seconds (default 600)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="keep executed copies and working directories in DIR")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print every cell's wall time")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shared, mnist = default_shared().resolve(), default_mnist().resolve()
    known = data_needs(shared, mnist)
    chosen = notebooks(args.only)
    if not chosen:
        print(f"no notebooks{' matching ' + ', '.join(args.only) if args.only else ''} in {NOTEBOOKS}", file=sys.stderr)
        return 2
    if args.list:
        for path in chosen:
            missing(path, known)  # refuses an unknown need
            print(f"{path.name}  needs: {', '.join(needs_of(path)) or 'nothing'}")
        return 0
    env = {
        **os.environ,
        "CAEKIT_SHARED_DATA": str(shared),
        "CAEKIT_MNIST_ROOT": str(mnist),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    failed: list[str] = []
    for path in chosen:
        absent = missing(path, known)
        if absent:
            print(f"skipped {path.name}: {absent}", flush=True)
            continue
        why = check_jupyter()
        if why:
            print(f"cannot run notebooks: {why}", file=sys.stderr)
            return 2
        keep = None
        if args.out is not None:
            keep = args.out.resolve()
            (keep / path.stem).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"caekit-{path.stem}-") as tmp:
            outcome = execute(path, keep / path.stem if keep else Path(tmp), env, args.timeout, keep)
        over = f"  (over the {BUDGET_S:.0f} s budget)" if outcome.seconds > BUDGET_S else ""
        if outcome.error:
            failed.append(path.name)
            print(f"FAILED  {path.name}  {outcome.seconds:6.1f} s  {outcome.error}", flush=True)
        else:
            print(f"ok      {path.name}  {outcome.seconds:6.1f} s{over}", flush=True)
        if args.verbose:
            for number, seconds, line in outcome.cells:
                print(f"        cell {number:2d}  {seconds:6.1f} s  {line}")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
