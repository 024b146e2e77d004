"""`validate(document)`: every problem of a flow document at once, each naming the step at fault.

Checks: the schema version, the document's shape, unknown node types, duplicate ids and
names, configs that do not fit their node type, templates and expressions that do not parse,
edges to missing nodes or ports, loop bodies, a missing trigger, and (as warnings) steps that
nothing can reach.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
from pydantic import BaseModel, ValidationError

from engine.document import Edge, FlowDocument, Node, check_schema
from engine.errors import DocumentError, ExpressionError
from engine.expressions import Template, ValueTemplate, compile_expression, compile_value
from engine.node import EXPRESSION_FORMAT, NodeType
from engine.registry import NodeRegistry, default_registry

TOOLS_PORT = "tools"
ERROR_PORT = "error"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a flow document, in plain words.

    `level` is "error" (the flow cannot run) or "warning" (it runs, but probably not as meant).
    """

    level: Literal["error", "warning"]
    code: str
    message: str
    node_id: str | None = None
    node_name: str | None = None
    field: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "code": self.code,
            "message": self.message,
            "node_id": self.node_id,
            "node_name": self.node_name,
            "field": self.field,
        }


@dataclass
class Analysis:
    """What validation learned about a document; `compile_flow` builds on it."""

    document: FlowDocument
    problems: list[Problem] = field(default_factory=list)
    types: dict[str, NodeType] = field(default_factory=dict)
    templates: dict[str, ValueTemplate | None] = field(default_factory=dict)
    static_configs: dict[str, BaseModel] = field(default_factory=dict)
    #: Configs whose templates sit only in fields that accept any value: validated once here,
    #: with the names of the fields a run fills in (see `graph.ConfigFiller`).
    open_configs: dict[str, tuple[BaseModel, frozenset[str]]] = field(default_factory=dict)
    ports: dict[str, frozenset[str]] = field(default_factory=dict)
    expressions: dict[str, Template] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(p.level == "error" for p in self.problems)

    def error(
        self,
        code: str,
        message: str,
        node: Node | None = None,
        field: str | None = None,
        level: Literal["error", "warning"] = "error",
    ) -> None:
        where = ""
        if node is not None:
            where = f"Step {node.describe()}"
            where += f", field '{field}': " if field else ": "
        elif field:
            where = f"Field '{field}': "
        self.problems.append(
            Problem(
                level,
                code,
                where + message,
                node.id if node else None,
                node.label if node else None,
                field,
            )
        )

    def warning(
        self, code: str, message: str, node: Node | None = None, field: str | None = None
    ) -> None:
        self.error(code, message, node, field, level="warning")


def validate(document: Any, registry: NodeRegistry | None = None) -> list[Problem]:
    """Every problem in a flow document (dict or FlowDocument), errors and warnings; [] if none."""
    return analyze(document, registry).problems


def analyze(document: Any, registry: NodeRegistry | None = None) -> Analysis:
    """Validate a document and keep what was learned (types, compiled templates, ports)."""
    registry = registry or default_registry()
    if isinstance(document, FlowDocument):
        analysis = Analysis(document)
    else:
        analysis = _parse(document)
    if analysis.problems and not analysis.document.nodes:
        return analysis
    doc = analysis.document
    _check_nodes(analysis, registry)
    by_id = {node.id: node for node in doc.nodes}
    _check_edges(analysis, by_id)
    _check_bodies(analysis, by_id)
    _check_reachability(analysis, by_id)
    return analysis


# -- the document's shape ---------------------------------------------------------------------


def _parse(raw: Any) -> Analysis:
    empty = FlowDocument()
    try:
        check_schema(raw)
    except DocumentError as exc:
        return Analysis(empty, [Problem("error", "schema", str(exc))])
    analysis = Analysis(empty)
    nodes: list[Node] = []
    edges: list[Edge] = []
    raw_nodes, raw_edges = raw.get("nodes", []), raw.get("edges", [])
    for key, items in (("nodes", raw_nodes), ("edges", raw_edges)):
        if not isinstance(items, list):
            analysis.error("shape", f"'{key}' must be a list, not {type(items).__name__}.")
    for index, item in enumerate(raw_nodes if isinstance(raw_nodes, list) else []):
        try:
            nodes.append(Node.model_validate(item))
        except ValidationError as exc:
            label = _raw_label(item, index)
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "node"
                analysis.error(
                    "shape",
                    f"Node {label}: '{where}' {_pydantic_message(err)}.",
                    field=f"nodes[{index}].{where}",
                )
    for index, item in enumerate(raw_edges if isinstance(raw_edges, list) else []):
        try:
            edges.append(Edge.model_validate(item))
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "edge"
                analysis.error(
                    "shape",
                    f"Connection #{index + 1}: '{where}' {_pydantic_message(err)}.",
                    field=f"edges[{index}].{where}",
                )
    rest = {k: v for k, v in raw.items() if k not in ("nodes", "edges")}
    try:
        doc = FlowDocument.model_validate(rest)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            analysis.error("shape", f"'{where}' {_pydantic_message(err)}.", field=where)
        doc = FlowDocument()
    doc.nodes, doc.edges = nodes, edges
    analysis.document = doc
    return analysis


def _raw_label(item: Any, index: int) -> str:
    if isinstance(item, Mapping):
        ident = item.get("name") or item.get("id")
        if ident:
            return f"'{ident}'"
    return f"#{index + 1}"


def _pydantic_message(err: Mapping[str, Any]) -> str:
    message = str(err.get("msg", "is invalid"))
    if err.get("type") == "missing":
        return "is required"
    if err.get("type") == "extra_forbidden":
        return "is not a setting of this step type (check the spelling)"
    if err.get("type") == "value_error":  # a config's own check: its words, without pydantic's
        message = message.removeprefix("Value error, ").rstrip(".")
    return message[0].lower() + message[1:] if message else message


# -- nodes and their configs ------------------------------------------------------------------


def _check_nodes(analysis: Analysis, registry: NodeRegistry) -> None:
    seen_ids: set[str] = set()
    seen_names: dict[str, str] = {}
    for node in analysis.document.nodes:
        if node.id in seen_ids:
            analysis.error(
                "duplicate_id", "another step has the same id; ids must be unique.", node, "id"
            )
        seen_ids.add(node.id)
        if node.label in seen_names and seen_names[node.label] != node.id:
            analysis.error(
                "duplicate_name",
                f"another step ({seen_names[node.label]}) has the same name; expressions find "
                "steps by name, so give each a name of its own.",
                node,
                "name",
            )
        seen_names.setdefault(node.label, node.id)
        node_type = registry.get(node.type)
        if node_type is None:
            close = difflib.get_close_matches(node.type, registry.names(), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else " Install the package providing it."
            analysis.error(
                "unknown_type", f"'{node.type}' is not a known step type.{hint}", node, "type"
            )
            continue
        analysis.types[node.id] = node_type
        _check_config(analysis, node, node_type)


def _check_config(analysis: Analysis, node: Node, node_type: NodeType) -> None:
    model = node_type.Config
    rendered = {k: v for k, v in node.config.items() if k not in node_type.raw_fields}
    template_paths: list[str] = []
    try:
        analysis.templates[node.id] = compile_value(
            rendered, lambda path, _t: template_paths.append(path)
        )
    except ExpressionError as exc:
        analysis.error("template", _sentence(f"the template {exc.reason}"), node, exc.field)
        analysis.templates[node.id] = None
        return
    for path, source in _expression_fields(model, node.config):
        if source in analysis.expressions:
            continue
        if not source.strip():
            analysis.error(
                "expression",
                "the expression is empty: write one, like input.score > 0.5.",
                node,
                path,
            )
            continue
        try:
            analysis.expressions[source] = compile_expression(source)
        except ExpressionError as exc:
            message = _sentence(f"the expression {source!r} {exc.reason}")
            analysis.error("expression", message, node, path)
    try:
        config = model.model_validate(node.config)
    except ValidationError as exc:
        for err in exc.errors():
            path = _loc_path(err["loc"])
            if any(
                path == t or path.startswith(t + ".") or path.startswith(t + "[")
                for t in template_paths
            ):
                continue  # checked again once the template is rendered at run time
            analysis.error("config", f"{_pydantic_message(err)}.", node, path or None)
        analysis.ports[node.id] = frozenset(node_type.outputs) | {ERROR_PORT}
        return
    if not template_paths:
        analysis.static_configs[node.id] = config
    else:
        top = frozenset(_top_field(path) for path in template_paths)
        if all(_accepts_anything(model, name) for name in top):
            analysis.open_configs[node.id] = (config, top)
    analysis.ports[node.id] = frozenset(node_type.output_ports(config)) | {ERROR_PORT}


def _top_field(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def _accepts_anything(model: type[BaseModel], name: str) -> bool:
    """Whether any rendered value fits field `name` as it is: typed Any, dict[str, Any] or
    list[Any], and no validator looks at it."""
    info = model.model_fields.get(name)
    if info is None or info.metadata:
        return False
    decorators = model.__pydantic_decorators__
    if decorators.model_validators or any(
        name in d.info.fields or "*" in d.info.fields for d in decorators.field_validators.values()
    ):
        return False
    annotation = info.annotation
    if annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    return (origin is dict and args[1:] == (Any,)) or (origin is list and args == (Any,))


def _loc_path(loc: tuple[Any, ...]) -> str:
    if loc and loc[-1] == "[key]":  # a dict key is at fault: name the dict
        loc = loc[:-2]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _sentence(text: str) -> str:
    """`text` ending as a sentence does (a question keeps its question mark)."""
    return text if text.endswith((".", "?", "!")) else f"{text}."


def _expression_fields(
    model: type[BaseModel], values: Any, path: str = ""
) -> Iterator[tuple[str, str]]:
    """(path, source) of every bare-expression field in a raw config."""
    if not isinstance(values, Mapping):
        return
    for name, info in model.model_fields.items():
        value = values.get(name)
        here = f"{path}.{name}" if path else name
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("format") == EXPRESSION_FORMAT:
            if isinstance(value, str):
                yield here, value
            continue
        inner = _nested_model(info.annotation)
        if inner is None:
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _expression_fields(inner, item, f"{here}[{index}]")
        else:
            yield from _expression_fields(inner, value, here)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


# -- edges, bodies and reachability -----------------------------------------------------------


def _check_edges(analysis: Analysis, by_id: Mapping[str, Node]) -> None:
    for index, edge in enumerate(analysis.document.edges):
        label = f"Connection #{index + 1} ({edge.source} → {edge.target})"
        source, target = by_id.get(edge.source), by_id.get(edge.target)
        if source is None:
            analysis.error(
                "edge",
                f"{label} starts at step '{edge.source}', which does not "
                "exist. Remove the connection or add the step.",
                field=f"edges[{index}].source",
            )
        if target is None:
            analysis.error(
                "edge",
                f"{label} ends at step '{edge.target}', which does not "
                "exist. Remove the connection or add the step.",
                field=f"edges[{index}].target",
            )
        if source is None or target is None:
            continue
        ports = analysis.ports.get(source.id)
        if ports is not None and edge.source_port not in ports:
            choices = ", ".join(sorted(ports))
            analysis.error(
                "port",
                f"{label} leaves from output '{edge.source_port}', which this "
                f"step does not have (it has: {choices}).",
                source,
                "edges",
            )
        target_type = analysis.types.get(target.id)
        if target_type is not None:
            if target_type.is_trigger:
                analysis.error(
                    "port",
                    f"{label} leads into a trigger; triggers start a run and "
                    "take no input. Remove the connection.",
                    target,
                    "edges",
                )
            elif edge.target_port != "in":
                analysis.error(
                    "port",
                    f"{label} arrives on input '{edge.target_port}'; steps "
                    "have a single input, 'in'.",
                    target,
                    "edges",
                )
        if (
            edge.source_port != TOOLS_PORT
            and source.parent != target.parent
            and target.parent != source.id
        ):
            analysis.error(
                "body",
                f"{label} crosses the border of a loop. Steps inside a loop "
                "connect only to each other; the loop hands their results on.",
                target,
                "edges",
            )


def _check_bodies(analysis: Analysis, by_id: Mapping[str, Node]) -> None:
    children: dict[str, int] = {}
    for node in analysis.document.nodes:
        if node.parent is None:
            continue
        parent = by_id.get(node.parent)
        parent_type = analysis.types.get(node.parent)
        if parent is None:
            analysis.error(
                "body", f"it sits inside '{node.parent}', which does not exist.", node, "parent"
            )
        elif parent_type is not None and not parent_type.has_body:
            analysis.error(
                "body", f"it sits inside {parent.describe()}, which is not a loop.", node, "parent"
            )
        else:
            children[node.parent] = children.get(node.parent, 0) + 1
    for node in analysis.document.nodes:
        node_type = analysis.types.get(node.id)
        if node_type is not None and node_type.has_body and not children.get(node.id):
            analysis.warning(
                "empty_body",
                "the loop has no steps inside it, so each item is "
                "passed through unchanged. Drag steps into its box.",
                node,
            )


def _check_reachability(analysis: Analysis, by_id: Mapping[str, Node]) -> None:
    triggers = [
        n.id
        for n in analysis.document.nodes
        if (t := analysis.types.get(n.id)) is not None and t.is_trigger
    ]
    if not triggers:
        analysis.error(
            "no_trigger",
            "The flow has no trigger, so nothing can start it. Add a "
            "trigger step such as 'Start manually'.",
        )
        return
    graph = nx.DiGraph()
    graph.add_nodes_from(by_id)
    for edge in analysis.document.edges:
        if edge.source in by_id and edge.target in by_id:
            graph.add_edge(edge.source, edge.target)
    for node in analysis.document.nodes:
        if node.parent in by_id:
            graph.add_edge(node.parent, node.id)
    reachable: set[str] = set(triggers)
    for trigger in triggers:
        reachable |= nx.descendants(graph, trigger)
    for node in analysis.document.nodes:
        if node.id not in reachable:
            analysis.warning(
                "unreachable",
                "nothing leads to this step, so it never runs. "
                "Connect it to the flow or delete it.",
                node,
            )
