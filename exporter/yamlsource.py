"""YAML text to plain values that remember where each one stood, for messages like `file:line: path: problem`.

Every config loader reads its file through `read()` and reports through the
`Document` it returns, so the daemon's config and the web config name lines,
paths, duplicate keys and unknown keys the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

Location = tuple[str | int, ...]
# Called for every string scalar: (text, its location, its line, where to add a problem) -> new text.
ScalarHook = Callable[[str, Location, int, list[str]], str]


class YAMLSyntaxError(ValueError):
    """The text is not YAML; the message is `source:line: invalid YAML: problem`."""


@dataclass
class Document:
    """A file's values, the line of each location in it, and the problems found while reading."""

    source: str
    data: Any
    lines: dict[Location, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # The source text of each scalar that did not resolve to a string ("1", "true", "" for null):
    # what Go's YAML decoding puts into a string field.
    texts: dict[Location, str] = field(default_factory=dict)

    def line(self, loc: Location) -> int:
        """The line of `loc`, or of its nearest ancestor present in the file (1 for none)."""
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc, 1)

    def problem(self, loc: Location, message: str) -> str:
        return f"{self.source}:{self.line(loc)}: {dotted(loc) or '(top level)'}: {message}"

    def replace(self, loc: Location, value: Any) -> None:
        """Put `value` at `loc` in `data` (a location the file has)."""
        node = self.data
        for part in loc[:-1]:
            node = node[part]
        node[loc[-1]] = value

    def validation_problems(self, err: ValidationError, unknown_key: str) -> list[str]:
        """One `problem()` per pydantic error; `unknown_key` is the message for keys the schema forbids."""
        out = []
        for error in err.errors(include_url=False):
            # Drop the steps pydantic adds inside a value (validator names, dict keys).
            loc = tuple(part for part in error["loc"] if not (
                isinstance(part, str) and (part.startswith("function-") or part == "[key]")))
            message = unknown_key if error["type"] == "extra_forbidden" else _message(error)
            out.append(self.problem(loc, message))
        return out


def read(text: str, source: str, scalar: ScalarHook | None = None) -> Document:
    """Parse `text`; raises YAMLSyntaxError. An empty file is an empty mapping; a file whose top
    level is not a mapping, and a key given twice in one mapping, are problems of the document."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise YAMLSyntaxError(f"{where}: invalid YAML: {getattr(err, 'problem', None) or err}") from None
    doc = Document(source, {})
    if node is None:
        return doc
    data = _build(node, (), doc, scalar)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        doc.problems.append(f"{source}:1: the top level must be a mapping")
        data = {}
    doc.data = data
    return doc


def dotted(loc: Location) -> str:
    """`a.b[0].c` for ("a", "b", 0, "c")."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _build(node: yaml.Node, path: Location, doc: Document, scalar: ScalarHook | None) -> Any:
    """Plain Python values from YAML nodes; a mapping entry's line is its key's line."""
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in out:
                doc.problems.append(f"{doc.source}:{line}: {dotted(path + (key,))}: duplicate key")
            doc.lines[path + (key,)] = line
            out[key] = _build(value_node, path + (key,), doc, scalar)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), doc, scalar) for i, item in enumerate(node.value)]
    value = yaml.SafeLoader("").construct_object(node)  # the resolved scalar: int, bool, str, …
    if not isinstance(value, str):
        doc.texts[path] = "" if value is None else str(node.value)
    elif scalar is not None:
        value = scalar(value, path, doc.lines[path], doc.problems)
    return value


def _message(error: Mapping[str, Any]) -> str:
    return str(error["msg"]).removeprefix("Value error, ")
