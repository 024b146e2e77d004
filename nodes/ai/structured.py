"""JSON answers: reading the JSON out of a model's text and checking it against a schema.

The schema check covers the JSON Schema keywords that describe an answer's shape: `type`,
`enum`, `const`, `properties`, `required`, `additionalProperties`, `items`, `minItems`,
`maxItems`, `minLength`, `maxLength`, `pattern`, `minimum`, `maximum`, `anyOf`, `oneOf` and
`allOf`. Other keywords (`$ref`, `format`, …) are not checked. (The `jsonschema` package is
not among FlowLoom's dependencies; this small check is enough for answer shapes.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from engine.errors import NodeError
from nodes.values import describe_value

QUOTE_CHARS = 200
MAX_PROBLEMS = 3
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


def json_instruction(schema: Mapping[str, Any] | None) -> str:
    """What to add to the system prompt so the model answers with JSON only."""
    text = "Answer with one JSON value only: no explanation and no text around it."
    if schema:
        text += " It must match this JSON schema: " + json.dumps(schema, ensure_ascii=False)
    return text


def parse_json_answer(text: str, schema: Mapping[str, Any] | None = None) -> Any:
    """The JSON value in a model's answer, checked against `schema`; NodeError quoting the
    start of the answer when it is not JSON or does not fit."""
    value = _loads(text)
    if schema:
        problems = schema_problems(value, schema)
        if problems:
            shown = "; ".join(problems[:MAX_PROBLEMS])
            more = (
                f" (and {len(problems) - MAX_PROBLEMS} more)"
                if len(problems) > MAX_PROBLEMS
                else ""
            )
            raise NodeError(
                f"the model's JSON answer does not fit the schema: {shown}{more}. "
                f"The answer began: {quote(text)}"
            )
    return value


def quote(text: str) -> str:
    """The start of a text, on one line, for messages."""
    flat = " ".join(text.split())
    return "«" + (flat if len(flat) <= QUOTE_CHARS else flat[:QUOTE_CHARS] + "…") + "»"


def _loads(text: str) -> Any:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        return json.loads(stripped)
    except ValueError as exc:
        reason = str(exc)
    # prose around the JSON ("Here it is: {...}"): try the outermost brackets
    starts = [i for i in (stripped.find("{"), stripped.find("[")) if i >= 0]
    end = max(stripped.rfind("}"), stripped.rfind("]"))
    if starts and end > min(starts):
        try:
            return json.loads(stripped[min(starts) : end + 1])
        except ValueError:
            pass
    if not stripped:
        raise NodeError("the model was asked for JSON but gave an empty answer.")
    raise NodeError(
        f"the model was asked for JSON but its answer is not JSON ({reason}). "
        f"The answer began: {quote(text)}"
    )


def schema_problems(value: Any, schema: Mapping[str, Any], where: str = "") -> list[str]:
    """Every way `value` does not fit `schema`, in plain words; [] when it fits."""
    if not isinstance(schema, Mapping):
        return []
    label = f"'{where}'" if where else "the answer"
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, name) for name in names):
            return [f"{label} should be {' or '.join(names)}, not {describe_value(value)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(c, ensure_ascii=False) for c in schema["enum"])
        problems.append(f"{label} should be one of {choices}, not {describe_value(value)}")
    if "const" in schema and value != schema["const"]:
        problems.append(f"{label} should be {json.dumps(schema['const'], ensure_ascii=False)}")
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if options and all(schema_problems(value, option, where) for option in options):
            problems.append(f"{label} fits none of the shapes the schema allows")
    for option in schema.get("allOf", ()):
        problems += schema_problems(value, option, where)
    if isinstance(value, dict):
        problems += _object_problems(value, schema, where, label)
    elif isinstance(value, list):
        problems += _array_problems(value, schema, where, label)
    elif isinstance(value, str):
        problems += _text_problems(value, schema, label)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        problems += _number_problems(value, schema, label)
    return problems


def _is_type(value: Any, name: str) -> bool:
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    kinds: dict[str, Any] = {
        "string": str,
        "boolean": bool,
        "object": dict,
        "array": list,
        "null": type(None),
    }
    kind = kinds.get(name)
    return kind is None or isinstance(value, kind)


def _object_problems(
    value: dict[str, Any], schema: Mapping[str, Any], where: str, label: str
) -> list[str]:
    problems = [
        f"{label} lacks the required key '{name}'"
        for name in schema.get("required", ())
        if name not in value
    ]
    properties: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        path = f"{where}.{name}" if where else name
        if name in properties:
            problems += schema_problems(item, properties[name], path)
        elif extra is False:
            problems.append(f"{label} has the key '{name}', which the schema does not allow")
        elif isinstance(extra, Mapping):
            problems += schema_problems(item, extra, path)
    return problems


def _array_problems(
    value: list[Any], schema: Mapping[str, Any], where: str, label: str
) -> list[str]:
    problems: list[str] = []
    if "minItems" in schema and len(value) < schema["minItems"]:
        problems.append(
            f"{label} should have at least {schema['minItems']} item(s), not {len(value)}"
        )
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        problems.append(
            f"{label} should have at most {schema['maxItems']} item(s), not {len(value)}"
        )
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            problems += schema_problems(item, items, f"{where}[{index}]")
    return problems


def _text_problems(value: str, schema: Mapping[str, Any], label: str) -> list[str]:
    problems: list[str] = []
    if "minLength" in schema and len(value) < schema["minLength"]:
        problems.append(f"{label} should be at least {schema['minLength']} character(s) long")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        problems.append(f"{label} should be at most {schema['maxLength']} character(s) long")
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matches = re.search(pattern, value) is not None
        except re.error:
            matches = True  # a pattern Python cannot read is not the answer's fault
        if not matches:
            problems.append(f"{label} should match the pattern {pattern!r}")
    return problems


def _number_problems(value: float, schema: Mapping[str, Any], label: str) -> list[str]:
    problems: list[str] = []
    if "minimum" in schema and value < schema["minimum"]:
        problems.append(f"{label} should be at least {schema['minimum']}, not {value}")
    if "maximum" in schema and value > schema["maximum"]:
        problems.append(f"{label} should be at most {schema['maximum']}, not {value}")
    return problems
