"""The node registry: which node types exist, found through the `flowloom.nodes` entry points.

FlowLoom's own node families are registered the same way as a third party's: a package
declares, in its `pyproject.toml`,

    [project.entry-points."flowloom.nodes"]
    my_family = "my_package.nodes"

and every `NodeType` subclass with a `type` in that module (or the class, or list of classes,
the entry point names) becomes available to flows.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import structlog

from engine.node import NodeType

ENTRY_POINT_GROUP = "flowloom.nodes"

log = structlog.get_logger(__name__)


class NodeRegistry:
    """Maps type names (`logic.condition`) to node type instances."""

    def __init__(self, types: Iterable[type[NodeType]] = ()) -> None:
        self._types: dict[str, NodeType] = {}
        for node_type in types:
            self.register(node_type)

    def register(self, node_type: type[NodeType]) -> type[NodeType]:
        """Add a node type; usable as a class decorator. A later registration wins."""
        name = getattr(node_type, "type", None)
        if not isinstance(name, str) or "." not in name:
            raise ValueError(
                f"{node_type.__name__} needs a dotted `type` name such as 'family.kind'."
            )
        self._types[name] = node_type()
        return node_type

    def get(self, type_name: str) -> NodeType | None:
        return self._types.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types

    def __iter__(self) -> Iterator[NodeType]:
        return iter(self._types.values())

    def names(self) -> list[str]:
        return sorted(self._types)

    def register_from(self, target: Any) -> None:
        """Register what an entry point names: a module, a NodeType class, or an iterable of them."""
        if isinstance(target, ModuleType):
            for _, member in inspect.getmembers(target, inspect.isclass):
                if (
                    issubclass(member, NodeType)
                    and member.__module__ == target.__name__
                    and isinstance(member.__dict__.get("type"), str)
                ):
                    self.register(member)
        elif inspect.isclass(target) and issubclass(target, NodeType):
            self.register(target)
        elif isinstance(target, Iterable):
            for item in target:
                self.register_from(item)
        else:
            raise TypeError(f"Entry point target {target!r} is not a module or node type.")

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Register node types from every installed package's `flowloom.nodes` entry points.

        A broken plugin is logged and left out; it never stops FlowLoom from starting.
        """
        for point in sorted(entry_points(group=group), key=lambda p: p.name):
            try:
                self.register_from(point.load())
            except Exception as exc:  # a third-party plugin must not take FlowLoom down
                log.error("node plugin failed to load", entry_point=point.name, error=str(exc))


_default: NodeRegistry | None = None


def default_registry() -> NodeRegistry:
    """The registry of every installed node type, built once."""
    global _default
    if _default is None:
        registry = NodeRegistry()
        registry.load_entry_points()
        _default = registry
    return _default
