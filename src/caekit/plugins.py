"""Plug-ins: a user's package whose ``@register_model`` / ``register_dataset`` / ``register_objective`` calls should
count wherever caekit runs, the command line included.

A package declares itself in its ``pyproject.toml``::

    [project.entry-points."caekit.plugins"]
    mine = "my_package.caekit_models"      # a module (imported) or "module:function" (called with no arguments)

or a module is named for one command (``caekit --plugin my_package.models train ...``) or for every process
(``CAEKIT_PLUGINS=my_package.models,other``). The command line loads them before each command and passes the named
ones on to the processes it starts (search trials, DDP ranks); a library user calls ``load_plugins()`` once.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Iterable
from functools import partial

from caekit.errors import ConfigError

GROUP = "caekit.plugins"
ENVIRONMENT = "CAEKIT_PLUGINS"
_loaded: dict[str, object] = {}


def _load(name: str, what: str, load: Callable[[], object]) -> None:
    if name in _loaded:
        return
    try:
        target = load()
        if not inspect.ismodule(target) and callable(target):
            target()  # an entry point naming a function: the plug-in's own registration
    except ConfigError:
        raise
    except Exception as exc:  # the user's code: whatever it raises becomes one line naming the plug-in
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(f"{what} '{name}' could not be loaded: {type(exc).__name__}: {detail}") from None
    _loaded[name] = target


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import the installed packages' ``caekit.plugins`` entry points, the modules in $CAEKIT_PLUGINS
    (comma-separated) and ``modules``, each once; returns the names of every plug-in loaded so far."""
    from importlib.metadata import entry_points  # ~0.1 s: only when a command looks for plug-ins, not for --help

    for point in entry_points(group=GROUP):
        _load(point.value, f"the plug-in '{point.name}' of entry point", point.load)
    named = [m.strip() for m in os.environ.get(ENVIRONMENT, "").split(",") if m.strip()]
    for module in dict.fromkeys([*named, *modules]):
        _load(module, "plug-in module", partial(importlib.import_module, module))
    return list(_loaded)


def loaded() -> list[str]:
    """The plug-ins loaded in this process."""
    return list(_loaded)


__all__ = ["ENVIRONMENT", "GROUP", "load_plugins", "loaded"]
