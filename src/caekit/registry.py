"""Name -> factory registries: a new model, dataset or objective is one function and one decorator."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from caekit.errors import ConfigError, did_you_mean

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Generic[F]):
    """A named collection of factories, e.g. ``MODELS.register("cae32")``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, F] = {}

    def register(self, name: str | None = None) -> Callable[[F], F]:
        def add(factory: F) -> F:
            key = name or factory.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = factory
            return factory

        return add

    def get(self, name: str) -> F:
        try:
            return self._items[name]
        except KeyError:
            hint = did_you_mean(name, self.names()) or f"; choose one of: {', '.join(self.names())}"
            raise ConfigError(f"unknown {self.kind} '{name}'{hint}") from None

    def build(self, name: str, **kwargs: Any) -> Any:
        """Call the factory registered as ``name``; unknown keyword arguments are a user error."""
        factory = self.get(name)
        params = inspect.signature(factory).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in kwargs if k not in params] if not takes_any else []
        if unknown:
            allowed = [p for p in params if params[p].kind is not inspect.Parameter.VAR_POSITIONAL]
            raise ConfigError(
                f"{self.kind} '{name}' has no option {', '.join(map(repr, unknown))}; "
                f"its options are: {', '.join(allowed) or 'none'}"
            )
        return factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
