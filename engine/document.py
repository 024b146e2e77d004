"""The flow document (schema `flowloom/1`): the one JSON shape the canvas, API and CLI share.

Every model keeps keys it does not know, so a document survives a round trip through an
older FlowLoom unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import DocumentError, SchemaVersionError

SCHEMA = "flowloom/1"
SCHEMA_MAJOR = 1

OnError = Literal["stop", "continue", "route"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Position(_Open):
    x: float = 0
    y: float = 0


class NodeSettings(_Open):
    """Per-node execution settings; every node type accepts them."""

    timeout_s: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0, le=20)
    retry_backoff_s: float = Field(default=1.0, ge=0)
    on_error: OnError = "stop"
    max_visits: int = Field(default=10, ge=1)


class ToolSpec(_Open):
    """How a node presents itself when an agent uses it as a tool."""

    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Node(_Open):
    id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    name: str = ""
    position: Position = Field(default_factory=Position)
    config: dict[str, Any] = Field(default_factory=dict)
    settings: NodeSettings = Field(default_factory=NodeSettings)
    parent: str | None = None
    tool: ToolSpec | None = None

    @property
    def label(self) -> str:
        """The name a person reads: the node's name, else its id."""
        return self.name or self.id

    def describe(self) -> str:
        """`'Name' (id)` for messages."""
        return (
            f"'{self.label}' ({self.id})" if self.name and self.name != self.id else f"'{self.id}'"
        )


class Edge(_Open):
    source: str
    target: str
    source_port: str = "out"
    target_port: str = "in"


class FlowSettings(_Open):
    timezone: str = "UTC"
    timeout_s: float | None = Field(default=None, gt=0)


class FlowDocument(_Open):
    schema_: str = Field(default=SCHEMA, alias="schema")
    name: str = "Untitled flow"
    description: str = ""
    nodes: list[Node] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)
    settings: FlowSettings = Field(default_factory=FlowSettings)
    vars: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The document as plain JSON data, with unknown keys kept and unset defaults left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def node(self, node_id: str) -> Node | None:
        """The node with this id, or None."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        return None


def check_schema(raw: Any) -> None:
    """Refuse a document whose schema this FlowLoom cannot read."""
    if not isinstance(raw, dict):
        raise DocumentError(f"A flow document must be a JSON object, not {type(raw).__name__}.")
    schema = raw.get("schema", SCHEMA)
    if schema == SCHEMA:
        return
    family, _, version = str(schema).partition("/")
    if family == "flowloom" and version.isdigit() and int(version) > SCHEMA_MAJOR:
        raise SchemaVersionError(
            f"This flow uses schema '{schema}', written by a newer FlowLoom; this FlowLoom reads "
            f"'{SCHEMA}'. Update FlowLoom to open it."
        )
    raise SchemaVersionError(
        f"Unknown schema '{schema}': this FlowLoom reads '{SCHEMA}' documents."
    )


def parse_document(raw: Any) -> FlowDocument:
    """Parse plain JSON data into a FlowDocument.

    Raises SchemaVersionError for a foreign or newer schema and pydantic's ValidationError for a
    malformed shape; `engine.validate` turns both into readable problems.
    """
    if isinstance(raw, FlowDocument):
        return raw
    check_schema(raw)
    return FlowDocument.model_validate(raw)


def load_document(path: str | Path) -> dict[str, Any]:
    """Read a flow document file as JSON data (not yet validated)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from exc
    if not isinstance(raw, dict):
        raise DocumentError(f"{path} must hold a JSON object (a flow document).")
    return raw


__all__ = [
    "SCHEMA",
    "Edge",
    "FlowDocument",
    "FlowSettings",
    "Node",
    "NodeSettings",
    "Position",
    "ToolSpec",
    "ValidationError",
    "check_schema",
    "load_document",
    "parse_document",
]
