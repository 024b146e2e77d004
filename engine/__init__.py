"""FlowLoom's engine: flow documents in, observable runs out.

from engine import run_flow, validate

problems = validate(document)          # every problem at once, by node
result = await run_flow(document, input={"name": "Ada"})
result.status, result.output, result.steps, result.error
"""

from engine.document import (
    SCHEMA,
    Edge,
    FlowDocument,
    Node,
    NodeSettings,
    load_document,
    parse_document,
)
from engine.errors import (
    DocumentError,
    ExpressionError,
    FlowLoomError,
    InvalidFlowError,
    NodeError,
    SchemaVersionError,
    StepTimeout,
    VisitLimitExceeded,
)
from engine.events import (
    Event,
    EventListener,
    EventStream,
    LogLine,
    RunFinished,
    RunStarted,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepRecord,
    StepSkipped,
    StepStarted,
    TokenStreamed,
    event_to_dict,
)
from engine.executor import Engine, FlowLoader, RunHandle, RunResult, run_flow
from engine.graph import CompiledFlow, compile_flow
from engine.node import Expression, NodeConfig, NodeType, Routed, StepContext, ToolFunction
from engine.registry import NodeRegistry, default_registry
from engine.validate import Problem, validate

__all__ = [
    "SCHEMA",
    "CompiledFlow",
    "DocumentError",
    "Edge",
    "Engine",
    "Event",
    "EventListener",
    "EventStream",
    "Expression",
    "ExpressionError",
    "FlowDocument",
    "FlowLoader",
    "FlowLoomError",
    "InvalidFlowError",
    "LogLine",
    "Node",
    "NodeConfig",
    "NodeError",
    "NodeRegistry",
    "NodeSettings",
    "NodeType",
    "Problem",
    "Routed",
    "RunFinished",
    "RunHandle",
    "RunResult",
    "RunStarted",
    "SchemaVersionError",
    "StepCancelled",
    "StepContext",
    "StepFailed",
    "StepFinished",
    "StepRecord",
    "StepSkipped",
    "StepStarted",
    "StepTimeout",
    "TokenStreamed",
    "ToolFunction",
    "VisitLimitExceeded",
    "compile_flow",
    "default_registry",
    "event_to_dict",
    "load_document",
    "parse_document",
    "run_flow",
    "validate",
]
