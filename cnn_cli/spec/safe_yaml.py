"""A YAML loader with bounds: configs are user files, and YAML can be a bomb.

Used for every YAML cnn-cli reads (configs, --set values, a run folder's
config.yaml in `cnn plot`). Errors are yaml.YAMLError subclasses carrying a
problem and a mark, so the callers' one-line messages show where.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..errors import UserError
from ..limits import MAX_YAML_ALIASES, MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES


class YamlTooLarge(yaml.YAMLError):
    """Nesting or alias expansion beyond what a config can need (billion laughs, deep nesting)."""

    def __init__(self, problem: str, mark):
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class BoundedSafeLoader(yaml.SafeLoader):
    """SafeLoader that bounds the document. PyYAML shares aliased nodes, so a few hundred
    bytes of nested aliases expand into billions of values only when walked later — the
    walk (validation, copying, an error message) is what would hang. Counting expanded
    nodes and depth while composing stops it first, and bounds the composer's recursion."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._sizes: dict[int, int] = {}  # id(node) → its size with every alias expanded

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise YamlTooLarge(f"more than {MAX_YAML_ALIASES} aliases (*name); a config needs few or none",
                                   self.peek_event().start_mark)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise YamlTooLarge(f"nested more than {MAX_YAML_DEPTH} levels deep; a config needs 5",
                               self.peek_event().start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if id(node) not in self._sizes:
            size = 1
            if isinstance(node, yaml.SequenceNode):
                size += sum(self._sizes.get(id(child), 1) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                size += sum(self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value)
            if size > MAX_YAML_NODES:
                raise YamlTooLarge(f"expands to over {MAX_YAML_NODES:,} values (nested aliases?); "
                                   f"a config has a few hundred", node.start_mark)
            self._sizes[id(node)] = size
        return node


def read_config_text(path: Path) -> str:
    """The file's text, refusing files far larger than any config before reading them whole."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_YAML_BYTES + 1)
        if len(data) > MAX_YAML_BYTES:
            raise UserError(f"{path}: over {MAX_YAML_BYTES:,} bytes, far larger than any config; "
                            f"give a config YAML file")
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserError(f"{path}: not UTF-8 text (byte {error.start}); save the config as UTF-8") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read config ({error.strerror or error})") from None
