"""The exceptions FlowLoom raises, each with a message that says what to do next."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.validate import Problem


class FlowLoomError(Exception):
    """Base class of every error FlowLoom raises on purpose."""


class DocumentError(FlowLoomError):
    """A flow document could not be read at all (not JSON, not an object, foreign schema)."""


class SchemaVersionError(DocumentError):
    """The document was written by a newer (or foreign) FlowLoom schema."""


class InvalidFlowError(FlowLoomError):
    """The flow document has problems that stop it from running; `problems` lists them all."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.level == "error"]
        lines = "\n".join(f"- {p.message}" for p in errors[:20])
        more = f"\n- … and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"The flow has {len(errors)} problem(s):\n{lines}{more}")


class ExpressionError(FlowLoomError):
    """An expression failed to parse or to evaluate; `field` names the config field, if known."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.reason = message
        self.field = field
        super().__init__(f"field '{field}': {message}" if field else message)


class NodeError(FlowLoomError):
    """Raised by a node's `run` for an expected failure; the message is shown to the user as is."""


class StepTimeout(FlowLoomError):
    """A step ran longer than its `timeout_s`."""


class VisitLimitExceeded(FlowLoomError):
    """A node in a cycle was visited more often than its `max_visits`."""
