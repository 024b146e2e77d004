"""Expressions and templates: sandboxed Jinja2, compiled once per flow.

- A *template* is a config string holding `{{ … }}` or `{% … %}`. A template whose whole value
  is one `{{ expr }}` keeps the expression's native type (`"{{ input.count + 1 }}"` gives 2);
  anything else renders to a string.
- An *expression* is a bare Jinja expression (`input.score > 0.5`), used by conditions.

Names in scope: `input`, `nodes`, `trigger`, `vars`, `run` (plus `loop` in loop bodies and
`args` in agent tools). The sandbox allows no access to Python internals, no imports, no file
or network access, and refuses to build huge values.
"""

from __future__ import annotations

import copy
import functools
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.nativetypes import NativeCodeGenerator
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from engine.errors import ExpressionError

MAX_SEQUENCE = 1_000_000
MAX_EXPONENT = 1_000

_TEMPLATE_MARK = re.compile(r"\{\{|\{%")


def _safe_multiply(left: Any, right: Any) -> Any:
    for seq, count in ((left, right), (right, left)):
        sized = isinstance(seq, str | list | tuple) and isinstance(count, int)
        if sized and len(seq) * count > MAX_SEQUENCE:
            raise SecurityError("the result would be too large")
    return operator.mul(left, right)


def _safe_power(left: Any, right: Any) -> Any:
    if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
        raise SecurityError("the exponent is too large")
    return operator.pow(left, right)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, data-first attribute access, and native single values."""

    code_generator_class = NativeCodeGenerator
    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            return _safe_multiply(left, right)
        if operator_ == "**":
            return _safe_power(left, right)
        return super().call_binop(context, operator_, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # `input.items` means the key "items" of the data, not dict.items.
        if type(obj) is dict:
            try:
                return obj[attribute]
            except KeyError:
                pass
        elif isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


ENVIRONMENT = _Sandbox(autoescape=False, keep_trailing_newline=True)
ENVIRONMENT.filters["fromjson"] = json.loads
_GLOBALS = dict(ENVIRONMENT.globals)
_EVAL_CONTEXT = EvalContext(ENVIRONMENT)
_NO_BLOCKS: dict[str, Any] = {}
_NO_GLOBALS: frozenset[str] = frozenset()


def is_template(value: object) -> bool:
    """True when a config string holds a `{{ … }}` or `{% … %}` template."""
    return isinstance(value, str) and _TEMPLATE_MARK.search(value) is not None


def _single_expression(source: str) -> nodes.Expr | None:
    """The expression when the whole template is one `{{ expr }}` (it keeps its native type)."""
    try:
        body = ENVIRONMENT.parse(source).body
    except TemplateSyntaxError:
        return None
    if (
        len(body) == 1
        and isinstance(body[0], nodes.Output)
        and len(body[0].nodes) == 1
        and not isinstance(body[0].nodes[0], nodes.TemplateData)
    ):
        return body[0].nodes[0]
    return None


_NOT_CONSTANT = object()


def _constant_value(expr: nodes.Expr | None) -> Any:
    """The value of an expression made only of literals (`[1, 2]`, `false`), else _NOT_CONSTANT.

    Jinja folds such expressions into text while compiling, so they are evaluated here.
    """
    if expr is None:
        return _NOT_CONSTANT
    try:
        return expr.as_const(EvalContext(ENVIRONMENT))
    except Exception:  # nodes.Impossible, or a literal that fails (1 / 0)
        return _NOT_CONSTANT


class Scope(Context):
    """What a step's templates see: the run's shared names plus the step's own (`input`, …).

    It is the Jinja context itself, built once per step and shared by all of that step's
    templates; the shared names are not copied.
    """

    def __init__(self, names: Mapping[str, Any], own: dict[str, Any] | None = None) -> None:
        # Context.__init__ does work a step does not need; set what compiled templates use.
        self.parent = names  # type: ignore[assignment]
        self.vars = own if own is not None else {}
        self.environment = ENVIRONMENT
        self.eval_ctx = _EVAL_CONTEXT
        self.exported_vars = set()
        self.name = None
        self.globals_keys = _NO_GLOBALS  # type: ignore[assignment]
        self.blocks = _NO_BLOCKS

    def resolve_or_missing(self, key: str) -> Any:
        if key in self.vars:
            return self.vars[key]
        if key in self.parent:
            return self.parent[key]
        return _GLOBALS.get(key, missing)

    @property
    def names(self) -> dict[str, Any]:
        return {**self.parent, **self.vars}

    def extended(self, **extra: Any) -> Scope:
        """This scope with more names of the step's own (e.g. a tool's `args`)."""
        return Scope(self.parent, {**self.vars, **extra})


RenderFn = Callable[[Context], Any]


class Template:
    """One compiled template or expression; call `render(scope)` for its value."""

    __slots__ = ("_constant", "_render", "field", "native", "source")

    def __init__(self, source: str, *, expression: bool = False, field: str | None = None) -> None:
        self.source = source
        self.field = field
        self._render, self.native, self._constant = _compile(source, expression)

    def render(self, scope: Scope) -> Any:
        try:
            if self.native:
                if self._constant is not _NOT_CONSTANT:
                    return copy.deepcopy(self._constant)
                value = next(self._render(scope), None)
                return None if isinstance(value, Undefined) else value
            return "".join(map(_to_text, self._render(scope)))
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
            raise ExpressionError(_runtime_message(exc), self.field) from exc


@functools.lru_cache(maxsize=4096)
def _compile(source: str, expression: bool) -> tuple[RenderFn, bool, Any]:
    """Compile a source once per process (a flow repeats the same templates across steps)."""
    text = f"{{{{ {source} }}}}" if expression else source.strip()
    expr = _single_expression(text)
    native = expression or expr is not None
    if not native:
        text = source  # blanks around a lone {{ }} are dropped; in text they are kept
    constant = _constant_value(expr) if native else _NOT_CONSTANT
    try:
        compiled = ENVIRONMENT.from_string(text)
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc, expression)) from exc
    return compiled.root_render_func, native, constant


def _to_text(value: Any) -> str:
    return value if type(value) is str else str(value)


def _syntax_message(exc: TemplateSyntaxError, expression: bool) -> str:
    where = "" if expression or not exc.lineno else f" (line {exc.lineno})"
    return f"does not parse: {exc.message}{where}"


def _runtime_message(exc: Exception) -> str:
    if isinstance(exc, UndefinedError):
        return f"{exc.message}. Check the names used; in scope are input, nodes, trigger, vars, run"
    if isinstance(exc, SecurityError):
        return f"it is not allowed: {exc}"
    return f"it failed: {type(exc).__name__}: {exc}"


def compile_expression(source: str) -> Template:
    """Compile a bare expression (`input.score > 0.5`); raises ExpressionError if it does not parse."""
    if not source.strip():
        raise ExpressionError("the expression is empty")
    return Template(source, expression=True)


class ValueTemplate:
    """A config value with templates anywhere inside it (nested dicts and lists included).

    The value's shape is turned into one generated Python function once, so rendering costs
    a call per template and nothing per level of nesting.
    """

    __slots__ = ("render",)

    def __init__(self, render: Callable[[Scope], Any]) -> None:
        self.render = render


_MAX_GENERATED_DEPTH = 40


def compile_value(
    value: Any, on_template: Callable[[str, Template], None] | None = None, path: str = ""
) -> ValueTemplate | None:
    """Compile the templates inside a JSON value; None when it holds none (use it as is).

    `on_template(path, template)` is told of every template found, e.g. for validation.
    Raises ExpressionError naming the path of the first template that does not parse.
    """
    namespace: dict[str, Any] = {}
    source = _generate(value, path, namespace, on_template, 0)
    if source is None:
        return None
    if source.startswith("_v"):  # the value is a single template: no wrapper needed
        return ValueTemplate(namespace[source.removesuffix("(scope)")])
    return ValueTemplate(eval(f"lambda scope: {source}", namespace))


def _generate(
    value: Any,
    path: str,
    namespace: dict[str, Any],
    on_template: Callable[[str, Template], None] | None,
    depth: int,
) -> str | None:
    """Python source building `value` with its templates rendered, or None if it has none."""
    if depth > _MAX_GENERATED_DEPTH:
        raise ExpressionError("the value is nested too deeply", path or None)
    if isinstance(value, str):
        if not is_template(value):
            return None
        try:
            template = Template(value, field=path or None)
        except ExpressionError as exc:
            raise ExpressionError(exc.reason, path or None) from exc
        if on_template is not None:
            on_template(path, template)
        name = f"_v{len(namespace)}"
        namespace[name] = template.render
        return f"{name}(scope)"
    if isinstance(value, dict):
        parts = [
            (
                key,
                _generate(
                    item, f"{path}.{key}" if path else str(key), namespace, on_template, depth + 1
                ),
            )
            for key, item in value.items()
        ]
        if all(part is None for _, part in parts):
            return None
        items = ", ".join(
            f"{_constant(key, namespace)}: {part or _constant(value[key], namespace)}"
            for key, part in parts
        )
        return "{" + items + "}"
    if isinstance(value, list):
        elements = [
            _generate(item, f"{path}[{i}]", namespace, on_template, depth + 1)
            for i, item in enumerate(value)
        ]
        if all(element is None for element in elements):
            return None
        return (
            "["
            + ", ".join(
                part or _constant(item, namespace)
                for part, item in zip(elements, value, strict=True)
            )
            + ",]"
        )
    return None


def _constant(value: Any, namespace: dict[str, Any]) -> str:
    name = f"_c{len(namespace)}"
    namespace[name] = value
    return name


def render_value(value: Any, scope: Scope) -> Any:
    """Render templates inside a value once (compiles on the spot: for rare, dynamic uses)."""
    template = compile_value(value)
    return value if template is None else template.render(scope)
