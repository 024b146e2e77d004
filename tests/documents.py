"""Small builders for flow documents in tests, so each test shows only what it is about."""

from __future__ import annotations

import itertools
from typing import Any

from engine.document import SCHEMA

EdgeSpec = tuple[str, str] | tuple[str, str, str]


def step(
    node_id: str,
    node_type: str,
    config: dict[str, Any] | None = None,
    *,
    name: str | None = None,
    parent: str | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One node of a flow document; its name is its id unless given."""
    node: dict[str, Any] = {
        "id": node_id,
        "type": node_type,
        "name": name or node_id,
        "config": config or {},
    }
    if parent is not None:
        node["parent"] = parent
    if settings is not None:
        node["settings"] = settings
    return node


def flow(nodes: list[dict[str, Any]], edges: list[EdgeSpec]) -> dict[str, Any]:
    """A flow document; an edge is (source, target) or (source, source_port, target)."""
    return {
        "schema": SCHEMA,
        "name": "test flow",
        "nodes": nodes,
        "edges": [
            {"source": e[0], "target": e[1]}
            if len(e) == 2
            else {"source": e[0], "source_port": e[1], "target": e[2]}
            for e in edges
        ],
    }


def chain(*nodes: dict[str, Any]) -> dict[str, Any]:
    """A flow whose top-level nodes run one after the other (body nodes are not chained)."""
    top = [n["id"] for n in nodes if "parent" not in n]
    return flow(list(nodes), [(a, b) for a, b in itertools.pairwise(top)])


def manual() -> dict[str, Any]:
    """The usual first node: `trigger.manual` called 'start'."""
    return step("start", "trigger.manual")
