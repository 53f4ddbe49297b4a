"""Load ``topics.yaml`` with errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from streamlearn.topology.exceptions import TopologyError
from streamlearn.topology.model import Topology


def _line_of(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest YAML node on the path ``loc`` (pydantic's error location)."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
            if match is None:
                break
            line = match.start_mark.line + 1
            node = next(v for k, v in node.value if k is match)
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that gives a key twice (YAML forbids it;
    PyYAML keeps the last silently: `partitions: 1` then `partitions: 2` was 2)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_topology(text: str, source: str = "<topology>") -> Topology:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise TopologyError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise TopologyError(f"{source}: expected a mapping with 'version' and 'topics'")
    try:
        return Topology.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            field = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_of(root, loc)
            where = f"{source}:{line}" if line is not None else source
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{where}: {field}: {message}")
        raise TopologyError("\n".join(problems)) from exc


def field_location(path: Path, loc: tuple[int | str, ...]) -> str:
    """``file:line`` of the field at ``loc`` (e.g. ``("topics", 3, "value_schema")``) of a
    topology file that loaded, for a problem found after loading, said as a load error is."""
    line = _line_of(yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader), loc)
    return f"{path}:{line}" if line is not None else str(path)


def load_topology(path: Path) -> Topology:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TopologyError(f"cannot read topology file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TopologyError(
            f"cannot read topology file {path}: not UTF-8 (byte {exc.start})"
        ) from None
    return parse_topology(text, str(path))
