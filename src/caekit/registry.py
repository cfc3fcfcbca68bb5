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
        self._options: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {}

    def register(
        self, name: str | None = None, options: Callable[..., Any] | None = None, fixed: tuple[str, ...] = ()
    ) -> Callable[[F], F]:
        """Register a factory. ``options``: the callable (a class, a dataclass) that a factory passes its
        ``**kwargs`` on to; its named parameters count as the factory's own, for checking and recording, except
        the ``fixed`` ones, which the factory sets itself (an unconditional DCGAN's ``num_classes``)."""

        def add(factory: F) -> F:
            key = name or factory.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} '{key}' is registered twice")
            self._items[key] = factory
            if options is not None:
                self._options[key] = (options, fixed)
            return factory

        return add

    def get(self, name: str) -> F:
        try:
            return self._items[name]
        except KeyError:
            hint = did_you_mean(name, self.names()) or f"; choose one of: {', '.join(self.names())}"
            raise ConfigError(f"unknown {self.kind} '{name}'{hint}") from None

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The factory's parameters, with those of its ``options`` in place of its ``**kwargs``."""
        params = dict(inspect.signature(self.get(name)).parameters)
        if name not in self._options:
            return params
        options, fixed = self._options[name]
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        own = {key: p for key, p in params.items() if p.kind in named}
        passed_on = inspect.signature(options).parameters.items()
        return own | {key: p for key, p in passed_on if p.kind in named and key not in own and key not in fixed}

    def build(self, name: str, **kwargs: Any) -> Any:
        """Call the factory registered as ``name``; unknown keyword arguments are a user error."""
        factory = self.get(name)
        params = self.parameters(name)
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
