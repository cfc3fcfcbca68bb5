"""What is registered, read from the source files without importing them.

``caekit models`` and ``caekit datasets`` list from here, so they answer in a fraction of a second instead of the
seconds that importing torch and torchvision takes; ``tests/test_layering.py`` checks the catalogue against the live
registries, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

HERE = Path(__file__).parent


def _decorated(package: str, decorator: str) -> dict[str, str]:
    """name -> first docstring line of every function in ``package`` decorated with ``@decorator("name")``."""
    found: dict[str, str] = {}
    for file in sorted((HERE / package).glob("*.py")):
        for node in ast.parse(file.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if (
                    isinstance(dec, ast.Call)
                    and isinstance(dec.func, ast.Name)
                    and dec.func.id == decorator
                    and dec.args
                    and isinstance(dec.args[0], ast.Constant)
                ):
                    found[str(dec.args[0].value)] = (ast.get_docstring(node) or "").strip().split("\n")[0]
    return found


def models() -> list[tuple[str, str]]:
    """(name, one-line summary) of every built-in model and preset, sorted by name."""
    from caekit.spec import PRESETS, preset_summary

    entries = _decorated("models", "register_model")
    entries.update({name: preset_summary(name) for name in PRESETS})
    return sorted(entries.items())


def pretrained() -> list[tuple[str, str]]:
    """(model.tag, its test figure and data) of every model zoo entry, from the zoo's index alone."""
    index = HERE / "models" / "zoo" / "index.json"
    entries = json.loads(index.read_text()) if index.is_file() else []
    return [
        (
            f"{e['model']}.{e['tag']}",
            f"{e['value']:g}: {e['metric']}, on {e['test']}. Trained on {e['data']}; input {'x'.join(map(str, e['input_shape']))}.",
        )
        for e in entries
    ]


def datasets() -> list[tuple[str, str]]:
    """(name, one-line summary) of every built-in dataset, sorted by name."""
    return sorted(_decorated("data", "register_dataset").items())


__all__ = ["datasets", "models", "pretrained"]
