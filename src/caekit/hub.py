"""The Hugging Face Hub format: ``model.safetensors`` (a caekit checkpoint, its metadata in the header),
``config.json`` (the same metadata, for the Hub's tooling) and a model card ``README.md``.

``save_pretrained(run_or_checkpoint, folder)`` writes it; ``from_pretrained(folder_or_repo_id)`` loads it (a repo id is
fetched with ``huggingface_hub``, which needs the network; a local folder needs nothing). Both go through
``huggingface_hub.ModelHubMixin``, so ``Pretrained.push_to_hub`` works on a machine with network and a token. Only
safetensors and JSON are read: a folder from elsewhere cannot run code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from caekit.checkpoint import save_checkpoint
from caekit.errors import CheckpointError, ConfigError
from caekit.fileio import atomic_write_text
from caekit.models.weights import load_trained
from caekit.runs import RunFolder, run_folder_of

if TYPE_CHECKING:
    from huggingface_hub import ModelHubMixin

FILES = ("model.safetensors", "config.json", "README.md")


def _mixin() -> type[ModelHubMixin]:
    try:
        from huggingface_hub import ModelHubMixin
    except ImportError:
        raise ConfigError("the Hub format needs huggingface_hub: pip install 'caekit[hub]'") from None
    return ModelHubMixin


def _card(meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    """A model card: what the model is, what it was trained on, how well it does, how to load it."""
    model, data = meta.get("model", {}), meta.get("data") or {}
    lines = [
        "---",
        "library_name: caekit",
        "tags: [caekit, autoencoder, pytorch]",
        "---",
        f"# {model.get('name', 'model')}",
        "",
        f"A caekit model: `{model.get('name')}` with arguments `{json.dumps(model.get('args', {}), sort_keys=True)}`, "
        f"images of {'x'.join(map(str, meta.get('image_shape', [])))} (channels x height x width) in [0, 1].",
        "",
        f"Trained on `{data.get('name', 'unknown data')}` with the objective `{(meta.get('objective') or {}).get('name')}`.",
    ]
    test = {k: v for k, v in (metrics.get("test") or {}).items() if isinstance(v, (int, float)) and math.isfinite(v)}
    if test:
        lines += ["", "| test metric | value |", "|---|---|", *[f"| {k} | {v:.4g} |" for k, v in sorted(test.items())]]
    lines += [
        "",
        "```python",
        "from caekit.hub import from_pretrained",
        "model, meta = from_pretrained('THIS_FOLDER_OR_REPO_ID')",
        "```",
    ]
    provenance = meta.get("provenance") or {}
    if provenance:
        lines += ["", "Made with " + ", ".join(f"{k} {v}" for k, v in sorted(provenance.items()) if isinstance(v, str)) + "."]
    return "\n".join(lines) + "\n"


def pretrained_class() -> Any:
    """``Pretrained(model, meta)``: a caekit model with ``save_pretrained``, ``from_pretrained`` and ``push_to_hub``."""
    mixin = _mixin()

    class Pretrained(mixin, library_name="caekit", tags=["caekit", "autoencoder"]):  # type: ignore[misc,valid-type,call-arg]
        def __init__(self, model: nn.Module, meta: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
            self.model, self.meta, self.metrics = model, meta, metrics or {}

        def _save_pretrained(self, save_directory: Path) -> None:
            save_checkpoint(save_directory / "model.safetensors", self.model, self.meta, sidecar=False)  # config.json is it
            atomic_write_text(save_directory / "config.json", json.dumps(self.meta, indent=2, sort_keys=True) + "\n")
            atomic_write_text(save_directory / "README.md", _card(self.meta, self.metrics))

        @classmethod
        def _from_pretrained(
            cls,
            *,
            model_id: str,
            revision: str | None = None,
            cache_dir: Any = None,
            force_download: bool = False,
            local_files_only: bool = False,
            token: Any = None,
            **_: Any,
        ) -> Any:
            folder = Path(model_id)
            if not folder.is_dir():
                from huggingface_hub import snapshot_download

                folder = Path(
                    snapshot_download(
                        model_id,
                        revision=revision,
                        cache_dir=cache_dir,
                        token=token,
                        force_download=force_download,
                        local_files_only=local_files_only,
                        allow_patterns=list(FILES),
                    )
                )
            weights = folder / "model.safetensors"
            if not weights.is_file():
                raise ConfigError(f"'{model_id}' holds no model.safetensors: it is not a model in the Hub format")
            model, meta = load_trained(weights)
            return cls(model, meta)

    return Pretrained


def save_pretrained(source: str | Path, folder: str | Path) -> Path:
    """A run folder's best checkpoint (or a checkpoint file) in the Hub format in ``folder``, which must not exist
    yet or be empty (nothing of the user's is overwritten); its model card shows the run's test metrics."""
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"'{target}' exists and is not an empty folder; choose a new folder for the export")
    model, meta = load_trained(source)
    run = run_folder_of(source)
    try:
        metrics = RunFolder(run).read_json("results.json") if run is not None else {}
    except CheckpointError:
        metrics = {}  # a damaged sidecar leaves the card without figures, not the export undone
    pretrained_class()(model, meta, metrics).save_pretrained(target)
    return target


def from_pretrained(source: str | Path, **hub_options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """The model (eval mode) and metadata of a Hub-format folder or Hub repo id (``hub_options``: revision, token,
    cache_dir, local_files_only, force_download)."""
    loaded = pretrained_class().from_pretrained(str(source), **hub_options)
    return loaded.model, loaded.meta


__all__ = ["FILES", "from_pretrained", "pretrained_class", "save_pretrained"]
