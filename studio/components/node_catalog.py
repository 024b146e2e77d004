"""The installed node types as the studio shows them (palette, forms, labels)."""

from __future__ import annotations

from functools import cache
from typing import Any

from engine import default_registry


@cache
def node_types() -> list[dict[str, Any]]:
    """`NodeType.describe()` of every installed node type, triggers first, then by category."""
    described = [node_type.describe() for node_type in default_registry()]
    return sorted(
        described, key=lambda d: (not d["is_trigger"], d["category"], d["title"], d["type"])
    )


@cache
def _by_type() -> dict[str, dict[str, Any]]:
    return {described["type"]: described for described in node_types()}


def describe(type_name: str) -> dict[str, Any] | None:
    """One node type's description, or None when it is not installed."""
    return _by_type().get(type_name)


def type_title(type_name: str) -> str:
    """The title a person reads for a node type ('Webhook'), or the type name itself."""
    described = describe(type_name)
    return str(described["title"]) if described else type_name
