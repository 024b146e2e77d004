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

import contextlib
import copy
import difflib
import functools
import itertools
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
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
        raise ExpressionError(_syntax_message(exc, source, text, expression=expression)) from exc
    if expression and expr is None:  # `input.a }}`: Jinja reads a value, then " }}" as text
        raise ExpressionError(_stray_delimiters(source))
    return compiled.root_render_func, native, constant


def _stray_delimiters(source: str) -> str:
    inner = source.strip()
    for mark in ("{{", "}}", "{%", "%}"):
        inner = inner.replace(mark, " ")
    inner = " ".join(inner.split())
    return "does not parse: write it without {{ }}" + (f", as {inner}" if inner else "")


def _to_text(value: Any) -> str:
    return value if type(value) is str else str(value)


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


# -- syntax errors in plain words ----------------------------------------------------------------
# Jinja's parser speaks of tokens ("expected token 'end of print statement', got 'x'"); the
# person who typed a broken expression needs to hear what is wrong and how to fix it.

_CLOSER_OF = {"(": ")", "[": "]", "{": "}"}
_OPENER_OF = {closer: opener for opener, closer in _CLOSER_OF.items()}
_LITERALS = frozenset({"name", "integer", "float", "string"})
_WORD_OPERATORS = frozenset({"and", "or", "not", "in", "is", "if", "else", "for", "recursive"})
_BLOCK_BEGIN = frozenset({"variable_begin", "block_begin"})
_BLOCK_END = frozenset({"variable_end", "block_end"})
_TAGS = ("if", "elif", "else", "endif", "for", "endfor", "set", "endset", "with", "endwith")
_SOME_FILTERS = "default, length, lower, upper, join, replace, round, tojson"
_SOME_TESTS = "defined, none, number, string"
_FIELD_NAME = re.compile(r"[A-Za-z_]\w*")
_FIELD_PATH = re.compile(r"[A-Za-z_][\w.]*")
_POSITION = re.compile(r" at (\d+)$")

_Token = tuple[int, str, str]  # (line, kind, raw text), as Jinja's lexer yields them


class _BrokenSource:
    """A source that does not parse: what the person typed, the text Jinja parsed, and
    Jinja's message about it."""

    def __init__(
        self, exc: TemplateSyntaxError, source: str, text: str, *, expression: bool
    ) -> None:
        self.jinja_message = exc.message or str(exc)
        self.source = source
        self.text = text
        self.expression = expression
        self.line = exc.lineno or 1
        position = _POSITION.search(self.jinja_message)
        #: Where in `text` the lexer stopped, for the errors that say.
        self.position = int(position[1]) if position is not None else None
        self._tokens: list[_Token] | None = None

    @property
    def tokens(self) -> list[_Token]:
        """The text's tokens (whitespace included), up to where the lexer gave up."""
        if self._tokens is None:
            self._tokens = []
            with contextlib.suppress(TemplateSyntaxError):  # keep the tokens before the error
                for token in ENVIRONMENT.lex(self.text):
                    self._tokens.append(token)
        return self._tokens

    def where(self) -> str:
        """Where the error is, as " at line L, column C": as far as known, and without the
        line when the source has only one."""
        # The text is the source after `{{ ` (an expression), or the source stripped (a lone
        # `{{ }}` that parsed, as one with an unknown filter does).
        offset = -3 if self.expression else max(self.source.find(self.text), 0)
        parts = []
        if "\n" in self.source.strip():
            line = self.line + self.source.count("\n", 0, max(offset, 0))
            parts.append(f"line {line}")
        if self.position is not None and 0 <= self.position + offset < len(self.source):
            at = self.position + offset
            column = at - self.source.rfind("\n", 0, at)
            parts.append(f"column {column}")
        return f" at {', '.join(parts)}" if parts else ""

    def char_at_error(self) -> str | None:
        if self.position is None or self.position >= len(self.text):
            return None
        return self.text[self.position]

    def side_by_side(self, got: str) -> tuple[str, str] | None:
        """The two values with nothing between them on the error's line (`input.a input.b`),
        the second one what Jinja `got`; None if there are none."""
        tokens = self.tokens
        previous: int | None = None
        inside = tag_name = False
        for index, (line, kind, value) in enumerate(tokens):
            if kind in _BLOCK_BEGIN:
                inside, previous, tag_name = True, None, kind == "block_begin"
            elif kind in _BLOCK_END:
                inside = False
            elif not inside or kind == "whitespace":
                continue
            elif tag_name:  # `{% if …`: the tag's name is no value
                tag_name = False
            elif (
                line == self.line
                and previous is not None
                and _ends_a_value(tokens[previous])
                and kind in _LITERALS
                and value not in _WORD_OPERATORS
                and _described_as(tokens[index], got)
            ):
                return _value_before(tokens, index), _value_from(tokens, index)
            else:
                previous = index
        return None

    def dangling_operator(self) -> str | None:
        """The operator that ends a `{{ }}` or `{% %}` on the error's line (`input.x >`)."""
        last: _Token | None = None
        for token in self.tokens:
            line, kind, _ = token
            if kind in _BLOCK_END and line == self.line and last and not _ends_a_value(last):
                return last[2]
            if kind in _BLOCK_BEGIN:
                last = None
            elif kind != "whitespace":
                last = token
        return None

    def tokens_before(self, got: str) -> list[str]:
        """What comes just before each token on the error's line that Jinja would describe
        as `got` (one of them is the token it did not expect)."""
        found: list[str] = []
        previous: _Token | None = None
        for token in self.tokens:
            if token[1] == "whitespace":
                continue
            if token[0] == self.line and previous is not None and _described_as(token, got):
                found.append(previous[2])
            previous = token
        return found

    def tag_on_line(self) -> str | None:
        """The name of the first `{% tag %}` on the error's line."""
        tokens = [token for token in self.tokens if token[1] != "whitespace"]
        for (line, kind, _), following in itertools.pairwise(tokens):
            if kind == "block_begin" and line == self.line and following[1] == "name":
                return following[2]
        return None


def _described_as(token: _Token, description: str) -> bool:
    """Whether Jinja's messages would call `token` `description` ("'x'", "'integer'", …)."""
    _, kind, value = token
    if kind == "variable_end":
        return description == "end of print statement"
    if kind == "block_end":
        return description == "end of statement block"
    return description in (value, kind)


def _ends_a_value(token: _Token) -> bool:
    _, kind, value = token
    if kind == "operator":
        return value in _OPENER_OF  # a closing bracket
    return kind in _LITERALS and value not in _WORD_OPERATORS


def _value_before(tokens: list[_Token], index: int) -> str:
    """The value that ends just before `tokens[index]`: `input.a`, `input['a']`, `f(x)`."""
    position = index - 1
    while position >= 0 and tokens[position][1] == "whitespace":
        position -= 1
    parts = _value_tokens(reversed(tokens[: position + 1]), inward=_OPENER_OF, outward=_CLOSER_OF)
    return "".join(reversed(parts)).strip()


def _value_from(tokens: list[_Token], index: int) -> str:
    """The value that starts at `tokens[index]`."""
    return "".join(_value_tokens(tokens[index:], inward=_CLOSER_OF, outward=_OPENER_OF)).strip()


def _value_tokens(
    tokens: Iterable[_Token], *, inward: Mapping[str, str], outward: Mapping[str, str]
) -> list[str]:
    """The texts of `tokens` up to where a value ends: a blank or an operator outside
    brackets, or a bracket (in `outward`) that the value sits inside. Brackets in `inward`
    open a part of the value (reading backwards, those are the closing ones)."""
    parts: list[str] = []
    depth = 0
    for _, kind, value in tokens:
        if kind in _BLOCK_BEGIN or kind in _BLOCK_END:
            break
        if kind == "operator" and value in outward:
            if depth == 0:
                break
            depth -= 1
        elif kind == "operator" and value in inward:
            depth += 1
        elif depth == 0 and (kind == "whitespace" or (kind == "operator" and value != ".")):
            break
        parts.append(value)
    return parts


def _quoted(text: str) -> str:
    return f'"{text}"' if "'" in text else f"'{text}'"


def _either(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _side_by_side(broken: _BrokenSource, got: str, *, in_brackets: bool = False) -> str | None:
    pair = broken.side_by_side(got)
    if pair is None:
        return None
    left, right = pair
    quoted_left, quoted_right = _quoted(left), _quoted(right)
    if in_brackets:
        return (
            f"{quoted_left} and {quoted_right} stand side by side: separate the items of a list and the "
            f"arguments of a call with a comma ({left}, {right})"
        )
    # `input name` may mean input.name; `input.a 3` or `'a' 'b'` mean no field.
    reads_a_field = _FIELD_NAME.fullmatch(right) and _FIELD_PATH.fullmatch(left)
    dot = f" {left}.{right} to read a field," if reads_a_field else ""
    return (
        f"{quoted_left} and {quoted_right} stand side by side with nothing between them: did you mean"
        f"{dot} {left} ~ {right} to join them as text, or an operator such as +, == or and "
        "between them?"
    )


def _unexpected_char(match: re.Match[str], broken: _BrokenSource) -> str | None:
    char = broken.char_at_error()
    if char is None:
        return None
    if char in "'\"":
        return (
            f"a quote ({char}) is never closed: add the closing {char} where the text ends, "
            "or remove the quote"
        )
    if char == "&":
        return "'&&' is not an operator here: use 'and', as in input.a and input.b"
    if char == "!":
        return "'!' alone is not an operator: use 'not' to negate, or '!=' to compare"
    if char == "?":
        return (
            "'? :' does not choose between two values here: write A if CONDITION else B, "
            "as in 'yes' if input.ok else 'no'"
        )
    return (
        f"the character {char} cannot be used in an expression: remove it, or put it inside "
        "quotes to mean text"
    )


def _unclosed_at_end(match: re.Match[str], broken: _BrokenSource) -> str:
    expected = match[1]
    if expected == "end of print statement":
        return "a '{{' is never closed: add '}}' after the expression"
    if expected == "end of statement block":
        return "a '{%' is never closed: add '%}' after the tag"
    return f"the text ends too early: '{expected}' is missing"


def _unclosed_block(match: re.Match[str], broken: _BrokenSource) -> str:
    block = match[1]
    return f"the {{% {block} %}} block is never closed: add {{% end{block} %}} where it ends"


def _unknown_tag(match: re.Match[str], broken: _BrokenSource) -> str:
    tag, open_block = match[1], match[2]
    if open_block is not None:
        return (
            f"{{% {tag} %}} does not fit here: the {{% {open_block} %}} block before it is "
            f"still open, so close that first with {{% end{open_block} %}}"
        )
    if tag.startswith("end") or tag in ("else", "elif"):
        return (
            f"{{% {tag} %}} belongs to no open block: remove it, or open the block it "
            "belongs to before it"
        )
    close = difflib.get_close_matches(tag, _TAGS, n=1)
    hint = f"did you mean {{% {close[0]} %}}?" if close else "the tags are if, for and set"
    return f"there is no {{% {tag} %}} tag: {hint}"


def _expected_token(match: re.Match[str], broken: _BrokenSource) -> str | None:
    expected, got = match[1], match[2]
    if expected.startswith("end of"):
        if got == "=":
            return "'=' cannot be used in an expression: to compare two values, use '=='"
        if got == ";":
            return "remove the ';': expressions do not end with one"
        return _side_by_side(broken, got) or (
            f"'{got}' cannot stand here: after a value comes an operator (such as +, ~, == or "
            "and), a filter (such as | upper) or the end of the expression"
        )
    if expected == ",":
        return _side_by_side(broken, got, in_brackets=True) or (
            "separate the items of a list and the arguments of a call with commas"
        )
    if expected == ":":
        if "{{{" in broken.text:
            return "'{{{' has one brace too many: start an expression with '{{'"
        return "in a {…} object every key needs ':' and a value, as in {'name': input.name}"
    if expected == "name":
        after = broken.tokens_before(got)
        if "|" in after:
            if got == "|":
                return "'||' is not an operator here: use 'or'"
            return "a '|' must be followed by a filter name, as in input.name | upper"
        if "is" in after:
            return "'is' must be followed by a test name, as in input.x is defined"
        if len(after) == 1:
            return f"a name is missing after '{after[0]}'"
        return None
    if expected == "in":
        return "a for loop is written {% for item in items %}"
    return None


def _unexpected_token(match: re.Match[str], broken: _BrokenSource) -> str | None:
    token, expected = match[1], match[2]
    if expected in _OPENER_OF:
        opener = _OPENER_OF[expected]
        if token in (")", "]"):
            return f"a '{opener}' is closed with '{token}': close it with '{expected}'"
        return f"a '{opener}' is never closed: add the missing '{expected}'"
    if token.startswith("end of"):
        operator_ = broken.dangling_operator()
        if operator_ is None:
            return None
        return (
            f"it stops right after '{operator_}', which needs a value after it: finish it, "
            f"or remove the '{operator_}'"
        )
    if token == "}" and not broken.expression:
        return (
            "a single '}' here closes nothing: end an expression with two braces '}}', and "
            "check that every '{' has its '}'"
        )
    if token in _OPENER_OF:
        return f"a '{token}' closes nothing: remove it, or add the '{_OPENER_OF[token]}' it needs"
    if token == "=":
        return "'===' and '!==' are not operators: compare with '==' or '!='"
    if not token.replace("_", "x").isalnum():
        return f"'{token}' cannot stand here: a value is missing before it, or it is one too many"
    return None


def _empty_tag(match: re.Match[str], broken: _BrokenSource) -> str:
    if match[1] == "end of print statement":
        return "there is nothing between '{{' and '}}': write an expression inside, or remove them"
    tag = broken.tag_on_line()
    if tag is None:
        return "a {% %} tag is missing its expression"
    return f"the {{% {tag} %}} tag needs an expression after '{tag}'"


def _unknown_filter_or_test(match: re.Match[str], broken: _BrokenSource) -> str:
    kind, name = match[1], match[2]
    known = ENVIRONMENT.filters if kind == "filter" else ENVIRONMENT.tests
    close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
    if close:
        return f"there is no {kind} '{name}': did you mean {_either(close)}?"
    examples = _SOME_FILTERS if kind == "filter" else _SOME_TESTS
    return f"there is no {kind} '{name}'; some that exist: {examples}"


_Explain = Callable[[re.Match[str], _BrokenSource], str | None]

#: Jinja's messages (matched whole) and what explains each; None when an explanation does not fit.
_EXPLANATIONS: tuple[tuple[re.Pattern[str], _Explain], ...] = (
    (re.compile(r"unexpected char .* at \d+"), _unexpected_char),
    (re.compile(r"unexpected end of template, expected '([^']+)'\.?"), _unclosed_at_end),
    (re.compile(r"Unexpected end of template\..*closed is '(\w+)'\.", re.S), _unclosed_block),
    (
        re.compile(r"Encountered unknown tag '(\w+)'\.(?:.*closed is '(\w+)'\.)?", re.S),
        _unknown_tag,
    ),
    (re.compile(r"expected token '([^']+)', got '(.+)'"), _expected_token),
    (re.compile(r"unexpected '(.+?)'(?:, expected '(.+)')?"), _unexpected_token),
    (re.compile(r"Expected an expression, got '(.+)'"), _empty_tag),
    (
        re.compile(r"expected name or number"),
        lambda _m, _b: (
            "a '.' must be followed by a field name or a number, as in input.name or items.0"
        ),
    ),
    (re.compile(r"No (filter|test) named '([^']+)'.*"), _unknown_filter_or_test),
    (
        re.compile(r"Missing end of comment tag"),
        lambda _m, _b: "a comment '{#' is never closed: add '#}' where it ends",
    ),
    (
        re.compile(r"Missing end of raw directive"),
        lambda _m, _b: "{% raw %} is never closed: add {% endraw %} where it ends",
    ),
)


def _syntax_message(exc: TemplateSyntaxError, source: str, text: str, *, expression: bool) -> str:
    """Why `source` does not parse and how to fix it, in plain words, and where if known.

    Jinja's own words are added ("details: …") only when no explanation here fits.
    """
    broken = _BrokenSource(exc, source, text, expression=expression)
    explanation = None
    stripped = source.strip()
    if expression and ("{{" in stripped or "{%" in stripped):
        inner = stripped.removeprefix("{{").removesuffix("}}").strip()
        explanation = f"write it without {{{{ }}}}, as {inner}"
    for pattern, explain in _EXPLANATIONS:
        if explanation is not None:
            break
        match = pattern.fullmatch(broken.jinja_message)
        if match is not None:
            explanation = explain(match, broken)
    if explanation is None:
        explanation = f"something in it is not valid (details: {broken.jinja_message})"
    return f"does not parse{broken.where()}: {explanation}"
