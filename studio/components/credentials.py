"""Credentials in the studio: the kinds a person can add, and the dialog that adds one.

Secret values go one way only: typed into password fields, sent to the server, encrypted
in storage. Nothing here ever reads a stored value back, so none reaches a browser.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nicegui import ui

from storage import CredentialInfo
from studio.components.layout import answer_of, test_id
from studio.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    label: str
    secret: bool = True
    required: bool = True
    hint: str = ""


@dataclass(frozen=True, slots=True)
class CredentialKind:
    type: str
    title: str
    fields: tuple[Field, ...]
    hint: str = ""


KINDS: tuple[CredentialKind, ...] = (
    CredentialKind(
        "openai",
        "OpenAI API key",
        (
            Field("api_key", "API key", hint="Starts with sk-; from platform.openai.com."),
            Field("base_url", "Server address (optional)", secret=False, required=False),
        ),
        "For AI steps whose provider is openai.",
    ),
    CredentialKind(
        "anthropic",
        "Anthropic API key",
        (Field("api_key", "API key", hint="Starts with sk-ant-; from console.anthropic.com."),),
        "For AI steps whose provider is anthropic.",
    ),
    CredentialKind(
        "openai_compatible",
        "OpenAI-compatible server",
        (
            Field(
                "base_url", "Server address", secret=False, hint="e.g. http://localhost:11434/v1"
            ),
            Field("api_key", "API key (optional)", required=False),
        ),
        "Ollama, vLLM, LM Studio, llama.cpp and other servers that speak OpenAI's API.",
    ),
    CredentialKind(
        "header",
        "Webhook header secret",
        (Field("value", "Secret value", hint="Callers send it in the header you name."),),
        "Lets a webhook accept only callers that send this secret in a header.",
    ),
    CredentialKind(
        "hmac",
        "Webhook signing secret",
        (Field("secret", "Signing secret", hint="The secret GitHub, Stripe or Slack gave you."),),
        "Lets a webhook check the signature GitHub, Stripe, Slack or another sender adds.",
    ),
    CredentialKind(
        "generic",
        "Other secret",
        (Field("value", "Secret value"),),
        "Any secret value a step refers to by the credential's name.",
    ),
)
KIND_BY_TYPE = {kind.type: kind for kind in KINDS}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,99}$")


def kind_title(type_name: str) -> str:
    kind = KIND_BY_TYPE.get(type_name)
    return kind.title if kind else type_name


def name_problem(name: str, taken: list[str]) -> str | None:
    """What is wrong with a new credential's name, or None."""
    if not name.strip():
        return "Give the credential a name; steps refer to it by this name."
    if not _NAME.match(name.strip()):
        return "Use letters, digits, spaces, dots, dashes or underscores (at most 100)."
    if name.strip() in taken:
        return f"A credential called '{name.strip()}' exists; saving replaces its values."
    return None


async def add_credential_dialog(
    runtime: Runtime,
    *,
    suggested_type: str = "openai",
    on_saved: Callable[[CredentialInfo], Awaitable[None] | None] | None = None,
) -> CredentialInfo | None:
    """Ask for a new credential (name, kind, values) and store it; the saved one, or None."""
    taken = [info.name for info in await runtime.db.credentials.list()]
    kind_options = {kind.type: kind.title for kind in KINDS}
    with ui.dialog() as dialog, ui.card().classes("w-[30rem] gap-3"):
        ui.label("Add a credential").classes("text-lg font-semibold")
        ui.label(
            "Secret values are encrypted when saved and never shown again; to change one, "
            "save the credential again with the same name."
        ).classes("text-sm text-slate-500")
        name = test_id(
            ui.input("Name", value=suggested_type if suggested_type not in taken else "")
            .props("outlined autofocus")
            .classes("w-full"),
            "credential-name",
        )
        name_note = ui.label().classes("text-xs text-orange-800 -mt-2")
        kind = test_id(
            ui.select(kind_options, value=suggested_type, label="Kind")
            .props("outlined")
            .classes("w-full"),
            "credential-kind",
        )
        kind_hint = ui.label().classes("text-sm text-slate-500 -mt-2")
        values_box = ui.column().classes("w-full gap-2")
        inputs: dict[str, ui.input] = {}

        def show_fields() -> None:
            chosen = KIND_BY_TYPE[kind.value]
            kind_hint.text = chosen.hint
            values_box.clear()
            inputs.clear()
            with values_box:
                for field in chosen.fields:
                    inputs[field.name] = test_id(
                        ui.input(
                            field.label,
                            password=field.secret,
                            password_toggle_button=field.secret,
                        )
                        .props("outlined autocomplete=off")
                        .classes("w-full"),
                        f"credential-field-{field.name}",
                    )
                    if field.hint:
                        inputs[field.name].props["hint"] = field.hint

        def check_name() -> None:
            name_note.text = name_problem(name.value or "", taken) or ""

        kind.on_value_change(show_fields)
        name.on_value_change(check_name)
        show_fields()
        check_name()
        error = ui.label().classes("text-sm text-negative")

        async def save() -> None:
            chosen = KIND_BY_TYPE[kind.value]
            label = (name.value or "").strip()
            problem = name_problem(label, [])
            missing = [
                field.label
                for field in chosen.fields
                if field.required and not (inputs[field.name].value or "").strip()
            ]
            if problem or missing:
                error.text = problem or f"Fill in: {', '.join(missing)}."
                return
            values = {
                field.name: inputs[field.name].value.strip()
                for field in chosen.fields
                if (inputs[field.name].value or "").strip()
            }
            for field_input in inputs.values():  # the dialog keeps no secret once it is sent
                field_input.value = ""
            info = await runtime.db.credentials.put(label, chosen.type, values)
            dialog.submit(info)

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat")
            test_id(ui.button("Save credential", on_click=save), "save-credential")
    saved: CredentialInfo | None = await answer_of(dialog)
    if saved is not None:
        ui.notify(f"Saved credential {saved.name}.", type="positive")
        if on_saved is not None:
            result = on_saved(saved)
            if isinstance(result, Awaitable):
                await result
    return saved
