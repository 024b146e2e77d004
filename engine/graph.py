"""`compile_flow(document)`: a validated document turned into the graph the executor walks.

Compiling does everything that does not depend on a run once per flow: node types are looked
up, templates compiled, configs without templates validated, edges sorted into forward and
back edges (cycles), and each region (the flow itself, each loop body) gets its entry steps
and readiness counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
from pydantic import BaseModel

from engine.document import FlowDocument, Node, NodeSettings
from engine.errors import InvalidFlowError
from engine.expressions import Template, ValueTemplate
from engine.node import NodeType, ToolFunction
from engine.registry import NodeRegistry
from engine.validate import TOOLS_PORT, analyze


@dataclass(slots=True)
class CompiledEdge:
    source: str
    target: str
    port: str
    #: Closes a cycle: it re-activates its target instead of counting towards readiness.
    back: bool = False
    #: Leaves a cycle: a skip on it waits until the cycle has come to rest.
    exits_cycle: int | None = None
    #: From a loop to a step of its own body: drawn for clarity, the loop runs the body itself.
    into_body: bool = False
    #: The target's only input, outside any cycle: a value on it makes the target ready at once.
    sole_input: bool = False
    target_node: CompiledNode | None = None


@dataclass(slots=True)
class CompiledNode:
    spec: Node
    id: str
    name: str
    type_name: str
    node_type: NodeType
    settings: NodeSettings
    template: ValueTemplate | None
    raw_fields: dict[str, Any]
    static_config: BaseModel | None
    filler: ConfigFiller | None
    waits_for_all: bool
    region: str | None
    out_edges: list[CompiledEdge] = field(default_factory=list)
    #: Forward edges arriving from steps of the same region (readiness count when all are live).
    in_forward: list[CompiledEdge] = field(default_factory=list)
    cycle: int | None = None
    is_sink: bool = True
    #: No retries and no timeout: runs in one inline attempt.
    plain: bool = True
    tools: tuple[ToolFunction, ...] = ()


class ConfigFiller:
    """Builds a run's config from one validated at compile time plus freshly rendered fields.

    Only used where every templated field accepts any value, so validating again could not
    fail: it saves re-validating the whole config on every step.
    """

    __slots__ = ("_cls", "_fields", "_fields_set", "_state")

    def __init__(self, validated: BaseModel, fields: frozenset[str]) -> None:
        self._cls = type(validated)
        self._state = dict(validated.__dict__)
        self._fields_set = validated.model_fields_set
        self._fields = fields

    def fill(self, rendered: Mapping[str, Any]) -> BaseModel:
        config = _new(self._cls)
        state = self._state.copy()
        for name in self._fields:
            state[name] = rendered[name]
        _set(config, "__dict__", state)
        _set(config, "__pydantic_fields_set__", self._fields_set)
        _set(config, "__pydantic_extra__", None)
        _set(config, "__pydantic_private__", None)
        return config


_new = object.__new__
_set = object.__setattr__


@dataclass(slots=True)
class Region:
    """The flow's top level (`owner` None) or one loop's body (`owner` the loop's id)."""

    owner: str | None
    nodes: list[str]
    entries: list[str]
    #: How many inputs each step waits for (a loop body; the flow's depend on the trigger).
    counts: dict[str, int]


@dataclass(slots=True)
class CompiledFlow:
    """A flow ready to run any number of times, concurrently."""

    document: FlowDocument
    nodes: dict[str, CompiledNode]
    by_name: dict[str, str]
    regions: dict[str | None, Region]
    triggers: list[str]
    expressions: dict[str, Template]
    _active: dict[str, tuple[frozenset[str], dict[str, int]]] = field(default_factory=dict)
    #: The stored flow this was compiled from, when there is one (a sub-flow's runs are
    #: counted under it).
    flow_id: str | None = None

    @property
    def name(self) -> str:
        return self.document.name

    def default_trigger(self) -> str:
        """The trigger a run starts from when none is named: the manual one, else the first."""
        for node_id in self.triggers:
            if self.nodes[node_id].type_name == "trigger.manual":
                return node_id
        return self.triggers[0]

    def activation(self, trigger: str) -> tuple[frozenset[str], dict[str, int]]:
        """Steps a run from `trigger` can reach, and how many live inputs each one waits for."""
        cached = self._active.get(trigger)
        if cached is None:
            active: set[str] = {trigger}
            stack = [trigger]
            while stack:
                for edge in self.nodes[stack.pop()].out_edges:
                    if edge.port != TOOLS_PORT and edge.target not in active:
                        active.add(edge.target)
                        stack.append(edge.target)
            counts = {
                node_id: sum(1 for e in self.nodes[node_id].in_forward if e.source in active)
                for node_id in active
            }
            cached = (frozenset(active), counts)
            self._active[trigger] = cached
        return cached


def compile_flow(document: Any, registry: NodeRegistry | None = None) -> CompiledFlow:
    """Validate and compile a flow document (dict or FlowDocument) for running.

    Raises InvalidFlowError listing every error when the document cannot run.
    """
    if isinstance(document, CompiledFlow):
        return document
    analysis = analyze(document, registry)
    if not analysis.ok:
        raise InvalidFlowError(analysis.problems)
    doc = analysis.document
    tool_ids = {e.target for e in doc.edges if e.source_port == TOOLS_PORT}
    nodes: dict[str, CompiledNode] = {}
    for spec in doc.nodes:
        node_type = analysis.types[spec.id]
        static = analysis.static_configs.get(spec.id)
        nodes[spec.id] = CompiledNode(
            spec=spec,
            id=spec.id,
            name=spec.label,
            type_name=spec.type,
            node_type=node_type,
            settings=spec.settings,
            template=analysis.templates.get(spec.id),
            raw_fields={k: v for k, v in spec.config.items() if k in node_type.raw_fields},
            static_config=static,
            filler=ConfigFiller(*analysis.open_configs[spec.id])
            if spec.id in analysis.open_configs
            else None,
            waits_for_all=node_type.waits_for_all_inputs(static) if static is not None else True,
            region=None if spec.id in tool_ids else spec.parent,
            plain=spec.settings.retries == 0 and spec.settings.timeout_s is None,
        )
    for edge in doc.edges:
        compiled = CompiledEdge(
            edge.source, edge.target, edge.source_port, target_node=nodes[edge.target]
        )
        nodes[edge.source].out_edges.append(compiled)
        if edge.source_port == TOOLS_PORT:
            continue
        nodes[edge.source].is_sink = False
        if nodes[edge.target].spec.parent == edge.source:
            compiled.into_body = True
            continue
        nodes[edge.target].in_forward.append(compiled)
    for node in nodes.values():
        node.tools = tuple(
            _tool_function(nodes[e.target]) for e in node.out_edges if e.port == TOOLS_PORT
        )
    regions: dict[str | None, Region] = {}
    owners = [None, *dict.fromkeys(n.spec.parent for n in nodes.values() if n.spec.parent)]
    cycle_ids = itertools.count(1)
    for owner in owners:
        regions[owner] = _compile_region(owner, nodes, tool_ids, cycle_ids)
    return CompiledFlow(
        document=doc,
        nodes=nodes,
        by_name={n.name: n.id for n in nodes.values()},
        regions=regions,
        triggers=[n.id for n in nodes.values() if n.node_type.is_trigger and n.region is None],
        expressions=analysis.expressions,
    )


def _tool_function(node: CompiledNode) -> ToolFunction:
    """How a step wired to an agent's `tools` port is offered to the model."""
    spec = node.spec.tool
    return ToolFunction(
        node_id=node.id,
        name=node.name,
        description=spec.description
        if spec
        else node.node_type.description or node.node_type.title,
        parameters=spec.parameters if spec else {"type": "object", "properties": {}},
    )


def _compile_region(
    owner: str | None,
    nodes: Mapping[str, CompiledNode],
    tool_ids: set[str],
    cycle_ids: Iterator[int],
) -> Region:
    members = [n.id for n in nodes.values() if n.spec.parent == owner and n.id not in tool_ids]
    member_set = set(members)
    graph = nx.DiGraph()
    graph.add_nodes_from(members)
    for node_id in members:
        for edge in nodes[node_id].out_edges:
            if edge.port != TOOLS_PORT and edge.target in member_set:
                graph.add_edge(node_id, edge.target)
    if owner is None:
        entries = [n for n in members if nodes[n].node_type.is_trigger]
    else:
        entries = [n for n in members if not nodes[n].in_forward]
    _mark_back_edges(entries, members, nodes, member_set)
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1:
            (only,) = component
            if not graph.has_edge(only, only):
                continue
        cycle_id = next(cycle_ids)
        for node_id in component:
            nodes[node_id].cycle = cycle_id
            for edge in nodes[node_id].out_edges:
                if edge.target not in component and edge.port != TOOLS_PORT:
                    edge.exits_cycle = cycle_id
    for node_id in members:
        node = nodes[node_id]
        node.in_forward = [e for e in node.in_forward if not e.back]
        if len(node.in_forward) == 1 and node.cycle is None and node.waits_for_all:
            node.in_forward[0].sole_input = node.in_forward[0].exits_cycle is None
    if owner is not None:
        # a body with no entry (every step on a cycle) still starts at its first step
        entries = entries or members[:1]
    counts = {n: len(nodes[n].in_forward) for n in members}
    return Region(owner, members, entries, counts)


def _mark_back_edges(
    entries: list[str],
    members: list[str],
    nodes: Mapping[str, CompiledNode],
    member_set: set[str],
) -> None:
    """Depth-first from the entries: an edge into a step still on the path closes a cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in entries + members:
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(nodes[root].out_edges))]
        while stack:
            node_id, edges = stack[-1]
            for edge in edges:
                if edge.port == TOOLS_PORT or edge.target not in member_set:
                    continue
                seen = state.get(edge.target)
                if seen == 1:
                    edge.back = True
                elif seen is None:
                    state[edge.target] = 1
                    stack.append((edge.target, iter(nodes[edge.target].out_edges)))
                    break
            else:
                state[node_id] = 2
                stack.pop()
