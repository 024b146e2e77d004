"""Data: steps that shape values — set keys, write text from a template."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator

from engine.errors import NodeError
from engine.node import NodeConfig, NodeType, StepContext
from nodes.values import as_text, describe_value


def _check_name(key: str) -> str:
    if not key or "" in key.split("."):
        raise ValueError(
            f"'{key}' is not a usable name: names must not be empty, and dotted "
            "names need a word between every two dots, such as 'customer.email'."
        )
    return key


#: A key of `data.set`'s values; checked on its own so the values stay "any value".
ValueName = Annotated[str, AfterValidator(_check_name)]


class SetValues(NodeType):
    type = "data.set"
    title = "Set values"
    icon = "edit_note"
    category = "Data"
    description = "Adds or changes named values, keeping the rest of the input."

    class Config(NodeConfig):
        values: dict[ValueName, Any] = Field(
            description=(
                "The values to set, by name. A value may be a template such as "
                "'{{ input.count + 1 }}'. A name with dots, such as 'customer.email', sets "
                "a value inside another one."
            ),
        )
        keep_input: bool = Field(
            default=True,
            description=(
                "Keep everything else the input holds; when off, the output is only these values."
            ),
        )

    async def run(self, ctx: StepContext, config: Config) -> Any:
        source = ctx.input
        output: dict[str, Any] = (
            source.copy() if config.keep_input and isinstance(source, dict) else {}
        )
        for key, value in config.values.items():
            if "." in key:
                _set_dotted(output, key, value)
            else:
                output[key] = value
        return output


def _set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in `target`, copying each object on the way so no other step's output changes."""
    *path, last = key.split(".")
    here = target
    for depth, part in enumerate(path):
        inner = here.get(part)
        if inner is None:
            inner = {}
        elif isinstance(inner, dict):
            inner = dict(inner)
        else:
            at = ".".join(path[: depth + 1])
            raise NodeError(
                f"Cannot set '{key}': '{at}' holds {describe_value(inner)}, not an object."
            )
        here[part] = inner
        here = inner
    here[last] = value


class TextTemplate(NodeType):
    type = "data.template"
    title = "Text from template"
    icon = "text_snippet"
    category = "Data"
    description = "Writes a piece of text, filling in values from earlier steps."

    class Config(NodeConfig):
        template: str = Field(
            description="The text to write; '{{ input.name }}' and the like are filled in.",
        )

        @field_validator("template", mode="before")
        @classmethod
        def _as_text(cls, value: Any) -> Any:
            # A template that is one `{{ expr }}` renders to the expression's own type.
            return value if isinstance(value, str) else as_text(value)

    async def run(self, ctx: StepContext, config: Config) -> Any:
        return {"text": config.template}
