"""Run reports: one self-contained HTML page per run folder, and an index page comparing runs side by side.

Every picture is embedded as a base64 data URI and the style sheet is inline, so a page can be mailed, archived or
opened from any folder; there is no script and nothing is fetched. A page holds the run's configuration, its test
results, the per-epoch metrics table and curves, and every picture the run folder has (reconstructions, filters,
embeddings, confusion matrices ...). TensorBoard logs stay in ``<run>/tb`` for those who prefer them.

    caekit report runs/a runs/b --out reports        # reports/a.html, reports/b.html, reports/index.html
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from caekit.checkpoint import read_meta
from caekit.errors import CaekitError, CheckpointError
from caekit.runs import RunFolder
from caekit.yamlio import parse_yaml

PICTURES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
SKIPPED_FOLDERS = {"tb", "checkpoints", "__pycache__", "projector"}
# In a run folder's sub-folders (outputs of reconstruct, embed, segment, ...) only these are pictures of the whole.
SUMMARY_PICTURES = {"comparison", "overlays", "iou", "pca", "tsne", "umap", "bars", "samples", "curves"}
# Pictures most people look for first; everything else follows alphabetically.
FIRST = ("curves", "reconstructions", "embedding", "tsne", "umap", "pca", "confusion", "samples", "filters", "feature_maps")

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;padding:1.2em;color:#1d1d1f}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.15em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f6;position:sticky;top:0}td.l,th.l{text-align:left}tr.best td{background:#e9f6ea;font-weight:600}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:12px;max-height:32em}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top}figcaption{font-size:12px;color:#555}
img{max-width:100%;height:auto;border:1px solid #eee}.meta{color:#555}.scroll{overflow-x:auto}
.side{display:grid;gap:1em;grid-template-columns:repeat(auto-fill,minmax(280px,1fr))}
"""


@dataclass
class RunInfo:
    """What a report shows about one run folder, read once."""

    path: Path
    title: str
    config: dict[str, Any]
    history: list[dict[str, float]]
    results: dict[str, Any]
    checkpoint: dict[str, Any]
    pictures: list[Path] = field(default_factory=list)
    extra_json: dict[str, Any] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, float]:
        return {k: v for k, v in self.results.get("test", {}).items() if isinstance(v, (int, float))}

    @property
    def monitor(self) -> str:
        """The metric that picked the best checkpoint, as results.json records it (older runs: the validation loss)."""
        recorded = self.results.get("monitor")
        if isinstance(recorded, str):
            return recorded
        return "val_loss" if any("val_loss" in row for row in self.history) else "train_loss"

    def best_row(self) -> dict[str, float] | None:
        """The epoch of the best checkpoint: results.json's ``best_epoch``, else the best value of the monitor."""
        epoch = self.results.get("best_epoch")
        rows = [r for r in self.history if int(r.get("epoch", -1)) == epoch] if epoch else []
        if rows:
            return rows[0]
        scored = [r for r in self.history if self.monitor in r and math.isfinite(r[self.monitor])]
        sign = -1.0 if self.results.get("monitor_mode") == "max" else 1.0
        return min(scored, key=lambda r: sign * r[self.monitor]) if scored else None


def read_run(path: str | Path, title: str | None = None) -> RunInfo:
    run = RunFolder.existing(path)
    config = _mapping(run.config_path, parse_yaml)
    checkpoint: dict[str, Any] = {}
    for which in ("best", "last"):  # the checkpoint's own header, which a damaged or edited sidecar cannot change
        if run.checkpoint(which).is_file():
            try:
                checkpoint = read_meta(run.checkpoint(which))
                break
            except CaekitError:
                continue
    extra = {file.name: _mapping(file, json.loads) for file in sorted(run.path.glob("*.json")) if file.name != "results.json"}
    return RunInfo(
        run.path,
        title or run.path.name,
        config,
        run.read_metrics(),
        _mapping(run.path / "results.json", json.loads),
        checkpoint,
        find_pictures(run.path),
        {k: v for k, v in extra.items() if v},
    )


def _mapping(path: Path, parse: Callable[..., Any]) -> dict[str, Any]:
    """A JSON or YAML mapping from ``path``; {} (the report shows what it can) when the file is missing or damaged."""
    try:
        data = (
            parse(path.read_text(encoding="utf-8"), str(path)) if parse is parse_yaml else parse(path.read_text(encoding="utf-8"))
        )
    except (OSError, UnicodeDecodeError, ValueError, CaekitError):
        return {}
    return data if isinstance(data, dict) else {}


def _shown(relative: Path) -> bool:
    """A run folder's own pictures, and the summary pictures of its output folders (reconstructions/comparison.png,
    embedding/pca.png), not each file such a folder holds for every input image."""
    folders = relative.parts[:-1]
    if SKIPPED_FOLDERS.intersection(folders):
        return False
    return not folders or relative.stem in SUMMARY_PICTURES


def find_pictures(folder: Path) -> list[Path]:
    """Pictures in a run folder and its sub-folders (not TensorBoard's or the checkpoints'), best-known names first."""
    found = [p for p in folder.rglob("*") if p.suffix.lower() in PICTURES and p.is_file() and _shown(p.relative_to(folder))]

    def order(p: Path) -> tuple[int, str]:
        rel = str(p.relative_to(folder))
        return next((i for i, stem in enumerate(FIRST) if p.stem.startswith(stem)), len(FIRST)), rel

    return sorted(found, key=order)


def expand_runs(paths: list[str | Path]) -> list[Path]:
    """Run folders given directly, or every run folder inside a folder of runs (a search or a runs directory)."""
    runs: list[Path] = []
    for given in paths:
        path = Path(given)
        if (path / "config.yaml").is_file():
            runs.append(path)
            continue
        children = sorted(p for p in path.iterdir() if (p / "config.yaml").is_file()) if path.is_dir() else []
        if not children:
            raise CheckpointError(f"'{path}' is neither a caekit run folder nor a folder of runs (no config.yaml)")
        runs.extend(children)
    return runs


# ------------------------------------------------------------------------------------------- HTML pieces


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def data_uri(path: Path) -> str:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _png_uri(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e9:
            return str(int(value))
        return f"{value:.4g}"
    return _e(value)


def _figure(src: str, caption: str, alt: str | None = None) -> str:
    return f'<figure><img src="{src}" alt="{_e(alt or caption)}"><figcaption>{_e(caption)}</figcaption></figure>'


def _table(header: list[str], rows: list[list[Any]], left: int = 1, highlight: int | None = None) -> str:
    head = "".join(f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cells = "".join(f'<td class="l">{c}</td>' if i < left else f"<td>{c}</td>" for i, c in enumerate(row))
        body.append(f'<tr class="best">{cells}</tr>' if r == highlight else f"<tr>{cells}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request: the page fetches nothing at all
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def metric_curves(history: list[dict[str, float]], title: str = "") -> str | None:
    """Every per-epoch metric of a run, one panel per quantity (loss, psnr, ...), train and val together."""
    from caekit import viz

    keys = [k for k in dict.fromkeys(k for row in history for k in row) if k.startswith(("train_", "val_"))]
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(key.split("_", 1)[1], []).append(key)
    if not history or not groups:
        return None
    fig, axes = viz.subplots(1, len(groups), figsize=(3.6 * len(groups), 3), squeeze=False)
    for ax, (quantity, members) in zip(axes[0], groups.items()):
        for key in members:
            points = [(row["epoch"], row[key]) for row in history if key in row]
            ax.plot(*zip(*points), "-o", markersize=3, label=key.split("_", 1)[0])
        ax.set_title(quantity, fontsize=10)
        ax.set_ylabel(f"{quantity} (dB)" if "psnr" in quantity else quantity)
        viz.integer_epochs(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _png_uri(fig)


# ------------------------------------------------------------------------------------------- one run


def _summary(info: RunInfo) -> str:
    model = info.config.get("model", {})
    data = info.config.get("data", {})
    shape = info.checkpoint.get("image_shape")
    parts = [f"model <b>{_e(model.get('name', '?'))}</b>", f"data <b>{_e(data.get('name', '?'))}</b>"]
    if shape:
        parts.append("images " + "x".join(map(str, shape)))
    parts.append(f"{len(info.history)} epoch(s)")
    if info.results.get("best_epoch"):
        parts.append(f"best epoch {info.results['best_epoch']}")
    if info.checkpoint.get("classes"):
        parts.append(f"{len(info.checkpoint['classes'])} classes")
    seconds = sum(row.get("seconds", 0) for row in info.history)
    if seconds:
        parts.append(f"{seconds:.0f} s training")
    return (
        '<p class="meta">' + " · ".join(parts) + f'</p><p class="meta">folder <code>{_e(info.path.resolve())}</code>'
        f" · TensorBoard: <code>tensorboard --logdir {_e(info.path / 'tb')}</code></p>"
    )


def _json_section(name: str, data: Any) -> str:
    flat = data if isinstance(data, dict) and all(isinstance(v, (int, float, str, bool)) for v in data.values()) else None
    if flat:
        return f"<h3>{_e(name)}</h3>" + _table(["field", "value"], [[_e(k), _number(v)] for k, v in flat.items()])
    text = json.dumps(data, indent=1)
    return f"<h3>{_e(name)}</h3><pre>{_e(text[:20000])}{'…' if len(text) > 20000 else ''}</pre>"


def run_page(info: RunInfo, index_link: str | None = None) -> str:
    parts = [f"<h1>{_e(info.title)}</h1>", _summary(info)]
    if index_link:
        parts.insert(0, f'<p><a href="./{_e(quote(index_link))}">← all runs</a></p>')
    for split, values in info.results.items():  # "test", or "val" after `caekit evaluate --split val`
        if isinstance(values, dict) and values:
            rows = [[_e(k), _number(v)] for k, v in values.items() if isinstance(v, (int, float))]
            parts.append(f"<h2>Results on the {_e(split)} split</h2>" + _table(["metric", "value"], rows))
    if info.history:
        columns = list(dict.fromkeys(k for row in info.history for k in row))
        best = info.best_row()
        highlight = info.history.index(best) if best in info.history else None
        rows = [[_number(row.get(c, "")) for c in columns] for row in info.history]
        parts.append("<h2>Metrics per epoch</h2>" + _table(columns, rows, left=0, highlight=highlight))
        curves = metric_curves(info.history)
        if curves:
            parts.append("<h2>Curves</h2>" + _figure(curves, "every metric per epoch"))
    shown = [p for p in info.pictures if not (p.parent == info.path and p.name == "curves.png" and info.history)]  # drawn above
    if shown:
        figures = "".join(_figure(data_uri(p), str(p.relative_to(info.path))) for p in shown)
        parts.append(f"<h2>Pictures</h2><div>{figures}</div>")
    for name, data in info.extra_json.items():
        parts.append(_json_section(name, data))
    parts.append("<h2>Configuration</h2><pre>" + _e(yaml.safe_dump(info.config, sort_keys=False)) + "</pre>")
    parts.append(_model_section(info))
    provenance = info.checkpoint.get("provenance")
    if isinstance(provenance, dict) and provenance:
        parts.append("<h2>Environment</h2>" + _table(["what", "value"], [[_e(k), _e(v)] for k, v in provenance.items()]))
    return _page(f"{info.title}: caekit run", "\n".join(parts))


def _model_section(info: RunInfo) -> str:
    """The layer table (filter, stride, padding, output, parameters) of a spec-built model, else its builder and
    arguments; with the parameter count read from the checkpoint's tensor shapes."""
    model = info.checkpoint.get("model")
    if not isinstance(model, dict):
        return ""
    counted = _parameter_count(info.path)
    head = (
        f'<h2>Model</h2><p class="meta"><b>{_e(model.get("name", "?"))}</b>'
        + (f", {counted:,} parameters" if counted else "")
        + "</p>"
    )
    spec = info.checkpoint.get("spec")
    if isinstance(spec, dict):
        try:
            from caekit.spec import parse_spec, plan

            return head + "<pre>" + _e(plan(parse_spec(spec, "checkpoint")).summary()) + "</pre>"
        except CaekitError:
            pass
    return head + "<pre>" + _e(yaml.safe_dump({"args": model.get("args")}, sort_keys=False)) + "</pre>"


def _parameter_count(run: Path) -> int:
    """Model parameters and buffers of the run's best (or last) checkpoint, from the tensor shapes alone."""
    from math import prod

    from safetensors import safe_open

    for which in ("best", "last"):
        path = run / "checkpoints" / f"{which}.safetensors"
        if path.is_file():
            try:
                with safe_open(str(path), framework="pt") as f:
                    names = f.keys()  # safe_open is not iterable
                    return sum(
                        prod(f.get_slice(k).get_shape())
                        for k in names
                        if k.startswith("model.") and "running_" not in k and not k.endswith("num_batches_tracked")
                    )
            except (OSError, ValueError):
                return 0
    return 0


# ------------------------------------------------------------------------------------------- several runs


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (lists stay whole)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(configs: list[dict[str, Any]], skip: tuple[str, ...] = ("name", "runs_dir")) -> list[str]:
    """The dotted config fields whose values are not the same in every run."""
    flats = [flatten(c) for c in configs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    return [k for k in keys if k not in skip and len({json.dumps(f.get(k), sort_keys=True, default=str) for f in flats}) > 1]


def compare_curves(infos: list[RunInfo]) -> str | None:
    """Validation (or training) loss of every run on one axis, and PSNR beside it when runs measured it."""
    from caekit import viz

    panels = [k for k in ("val_loss", "val_psnr") if any(k in r for i in infos for r in i.history)] or [
        k for k in ("train_loss",) if any(k in r for i in infos for r in i.history)
    ]
    if not panels:
        return None
    fig, axes = viz.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), squeeze=False)
    for ax, key in zip(axes[0], panels):
        for info in infos:
            points = [(row["epoch"], row[key]) for row in info.history if key in row]
            if points:
                ax.plot(*zip(*points), "-o", markersize=3, label=info.title)
        ax.set_title(key, fontsize=10)
        ax.set_ylabel(f"{key} (dB)" if "psnr" in key else key)
        viz.integer_epochs(ax)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="best")
    return _png_uri(fig)


def index_page(infos: list[RunInfo], pages: list[str], extras: list[Path] | None = None) -> str:
    differ = config_differences([i.config for i in infos])
    test_keys = list(dict.fromkeys(k for i in infos for k in i.test))
    best_keys = [k for k in ("val_loss", "val_psnr") if any(k in r for i in infos for r in i.history)]
    header = ["run", "model", "data", "epochs", *differ, *[f"best {k}" for k in best_keys], *[f"test {k}" for k in test_keys]]
    rows = []
    for info, page in zip(infos, pages):
        flat = flatten(info.config)
        best = info.best_row() or {}
        rows.append(
            [
                f'<a href="./{_e(quote(page))}">{_e(info.title)}</a>',
                _e(flat.get("model.name", "")),
                _e(flat.get("data.name", "")),
                str(len(info.history)),
                *[_number(flat.get(k, "")) for k in differ],
                *[_number(best.get(k, "")) for k in best_keys],
                *[_number(info.test.get(k, "")) for k in test_keys],
            ]
        )
    parts = [
        f"<h1>caekit runs ({len(infos)})</h1>",
        '<p class="meta">Columns between <i>data</i> and the metrics are the config fields that differ between runs.</p>',
        _table(header, rows, left=3),
    ]
    curves = compare_curves(infos)
    if curves:
        parts.append("<h2>Curves</h2>" + _figure(curves, "per-epoch metrics of every run"))
    for extra in extras or []:
        parts.append(f"<h2>{_e(extra.parent.name)}</h2>" + _figure(data_uri(extra), extra.name))
    # The same picture of every run side by side, e.g. all reconstructions.png in one row.
    names = list(dict.fromkeys(str(p.relative_to(i.path)) for i in infos for p in i.pictures))
    for name in names:
        cells = [(info, info.path / name) for info in infos if (info.path / name).is_file()]
        if len(cells) < 2:
            continue
        figures = "".join(_figure(data_uri(p), info.title, f"{name} of {info.title}") for info, p in cells)
        parts.append(f'<h2>{_e(name)}, side by side</h2><div class="side">{figures}</div>')
    return _page("caekit runs", "\n".join(parts))


def _titles(runs: list[Path]) -> list[str]:
    """Run folder names, with their parent's name added where two runs share a name (trial-000 of two searches)."""
    names = [r.name for r in runs]
    return [f"{r.parent.name}-{r.name}" if names.count(r.name) > 1 else r.name for r in runs]


def write_reports(runs: list[str | Path], out: str | Path) -> list[Path]:
    """One ``<run>.html`` per run and ``index.html`` comparing them; returns the index first, then the run pages."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folders = expand_runs(list(runs))
    extras = [Path(p) / "search.png" for p in runs if (Path(p) / "search.png").is_file()]
    infos = [read_run(folder, title) for folder, title in zip(folders, _titles(folders))]
    pages = [f"{info.title}.html" for info in infos]
    written = []
    for info, page in zip(infos, pages):
        (out / page).write_text(run_page(info, index_link="index.html"), encoding="utf-8")
        written.append(out / page)
    index = out / "index.html"
    index.write_text(index_page(infos, pages, extras), encoding="utf-8")
    return [index, *written]
