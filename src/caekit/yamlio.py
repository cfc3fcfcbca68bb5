"""Reading YAML that a user wrote: safe (no Python objects), duplicate keys refused, alias bombs bounded, and every
problem one ``ConfigError`` line naming the file (or the ``--set`` key), the line and the column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from caekit.errors import ConfigError

MAX_VALUES = 1_000_000  # after expanding aliases: far above any real config, far below what would hang or exhaust memory


class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (line {seen[key].start_mark.line + 1} and {mark.line + 1})", mark
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded (aliases share nodes: memoised by identity)."""
    key = id(node)
    if key not in sizes:
        sizes[key] = 0  # a recursive alias counts once rather than forever
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        sizes[key] = 1 + sum(_expanded_size(child, sizes) for child in children)
        if sizes[key] > MAX_VALUES:
            raise ConfigError(f"more than {MAX_VALUES:,} values once its aliases are expanded (an alias bomb?)")
    return sizes[key]


def _where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _problem(exc: yaml.YAMLError) -> str:
    return str(getattr(exc, "problem", None) or str(exc).splitlines()[0])


def parse_yaml(text: str, source: str) -> Any:
    """The value ``text`` holds; ``source`` (a file, or ``--set key``) starts every error line."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before any parsing
        raise ConfigError(f"{source}{_where(exc)}: not valid YAML: {_problem(exc)}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            _expanded_size(node, {})
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}{_where(exc)}: not valid YAML: {_problem(exc)}") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> Any:
    """A YAML (or JSON, which YAML reads too) file's value; unreadable bytes are one line too."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file (save it as UTF-8)") from None
    return parse_yaml(text, str(path))


__all__ = ["MAX_VALUES", "parse_yaml", "read_yaml"]
