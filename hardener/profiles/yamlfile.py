"""Read a YAML file into plain data plus the line of every mapping key, for one-line errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hardener.errors import InputError


@dataclass
class YamlDoc:
    """A parsed YAML document: `data`, and `lines[(key, subkey, ...)]` = 1-based line of that key."""

    path: str
    data: Any
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, *keys: str) -> int | None:
        """Line of the key path (e.g. line('settings', 'relayhost')), or None if unknown."""
        return self.lines.get(tuple(keys))


def _walk(node: yaml.Node, prefix: tuple[str, ...], lines: dict[tuple[str, ...], int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = prefix + (str(key_node.value),)
                lines.setdefault(path, key_node.start_mark.line + 1)
                _walk(value_node, path, lines)


def load_yaml(path: Path, label: str | None = None) -> YamlDoc:
    """Parse `path`; InputError (one line, naming the file and line) if unreadable or not YAML."""
    name = label or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", file=name) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read: {err}", file=name) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(f"not valid YAML: {problem}", file=name,
                         line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlDoc(name, data, lines)
