"""The floors of ../shared/DESIGN.md, kept by reading the import graph: a module imports only lower floors.

The table below is the allowed one; the README's layout section shows the same floors, and a test checks that too.
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "caekit"

# package or module of caekit -> floor; a module may import caekit modules of lower floors, and its own package
FLOORS = {
    "errors": 0,
    "fileio": 1,
    "plugins": 1,
    "registry": 1,
    "yamlio": 1,
    "checkpoint": 2,
    "config": 2,
    "device": 2,
    "layers": 2,
    "metrics": 2,
    "runs": 2,
    "spec": 2,
    "catalogue": 3,
    "data": 3,
    "models": 3,
    "hub": 4,
    "inference": 4,
    "training": 4,
    "viz": 4,
    "evaluate": 5,
    "runner": 6,
    "report": 7,
    "search": 7,
    "workflows": 7,
    "api": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 10,
}


def imported_parts(path: Path) -> list[tuple[int, str]]:
    """(line, caekit part) of every ``import caekit.X...`` and ``from caekit.X... import`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [node.module]
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for name in names:
            parts = name.split(".")
            if parts[0] == "caekit" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
            elif name == "caekit" and isinstance(node, ast.ImportFrom):  # from caekit import viz
                found += [(node.lineno, a.name) for a in node.names]
    return found


def upward_imports(source: Path) -> list[str]:
    """Every import that does not go down a floor, as ``file:line part -> part``; unknown parts are reported too."""
    bad = []
    for path in sorted(source.rglob("*.py")):
        own = path.relative_to(source).parts[0].removesuffix(".py")
        if own not in FLOORS:
            bad.append(f"{path.relative_to(source)}: '{own}' has no floor in the table")
            continue
        for line, target in imported_parts(path):
            if target == own:
                continue
            if target not in FLOORS:
                bad.append(f"{path.relative_to(source)}:{line} imports '{target}', which has no floor")
            elif FLOORS[target] >= FLOORS[own]:
                bad.append(f"{path.relative_to(source)}:{line} {own} (floor {FLOORS[own]}) -> {target} (floor {FLOORS[target]})")
    return bad


def test_every_import_goes_down_a_floor() -> None:
    assert upward_imports(SOURCE) == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    copy = tmp_path / "caekit"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "models" / "cae.py").write_text((copy / "models" / "cae.py").read_text() + "\nfrom caekit.training import engine\n")
    (copy / "training" / "objectives.py").write_text(
        "from caekit import viz\n" + (copy / "training" / "objectives.py").read_text()
    )
    found = upward_imports(copy)
    assert len(found) == 2
    assert any(f.startswith("models/cae.py:") and "models (floor 3) -> training (floor 4)" in f for f in found)
    assert any(f.startswith("training/objectives.py:1 training (floor 4) -> viz (floor 4)") for f in found)


def test_the_readme_shows_the_same_floors() -> None:
    """README's layout table: one row per package, ``| floor | `caekit.X`, ... | what |``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout") :]
    section = section[: section.find("\n## ", 4) % (len(section) + 1)]
    shown: dict[str, int] = {}
    for floor, cell in re.findall(r"^\| (\d+) \| ([^|]+) \|", section, re.M):
        for name in re.findall(r"`caekit(?:\.(\w+))?`", cell):
            shown[name or "__init__"] = int(floor)
    expected = {k: v for k, v in FLOORS.items() if k != "__main__"}
    assert shown == expected


def test_the_catalogue_lists_what_the_registries_hold() -> None:
    """``caekit models``/``datasets`` read the source instead of importing torch; they must say what the registries say."""
    from caekit import catalogue
    from caekit.data.datasets import DATASETS
    from caekit.models import MODELS, list_models

    def summary(factory: object) -> str:
        return (getattr(factory, "__doc__", None) or "").strip().split("\n")[0]

    assert catalogue.models() == [(name, summary(MODELS.get(name))) for name in list_models()]
    assert catalogue.datasets() == [(name, summary(DATASETS.get(name))) for name in DATASETS.names()]
    from caekit.models.pretrained import pretrained_cfgs

    assert [name for name, _ in catalogue.pretrained()] == [cfg.name for cfg in pretrained_cfgs()]
