"""A form built from a node type's config JSON schema: nothing about a node type is written twice.

    form = ConfigForm(schema, config, on_change=save, names=lambda: ["input", "nodes.Greet"],
                      credentials=["openai"], on_add_credential=ask)
    form.show_problems({"url": "is required."})

Text becomes a growing text box (with a menu that inserts `{{ names }}`), numbers a number box,
choices (enum, Literal) a select, booleans a switch, nested models a section of their own
(switched on and off when optional), lists of models a list of cards, a union with a
discriminator a choice of kind, and dicts, lists and free values a JSON box. A field named
`credential` is a picker of stored credentials with "Add credential".
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from engine.node import EXPRESSION_FORMAT
from studio.components.layout import test_id

ADD_CREDENTIAL = "__add_credential__"
_ACRONYMS = {"url": "URL", "ttl": "TTL", "json": "JSON", "http": "HTTP", "id": "ID", "api": "API"}
_UNITS = {"s": "seconds", "ms": "milliseconds", "bytes": "bytes"}
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.S)

OnChange = Callable[[dict[str, Any]], None]


def field_label(name: str) -> str:
    """'timeout_s' → 'Timeout (seconds)', 'base_url' → 'Base URL', 'keep_input' → 'Keep input'."""
    words = name.split("_")
    unit = None
    if len(words) > 1 and words[-1] in ("s", "ms"):
        unit = _UNITS[words.pop()]
    text = " ".join(_ACRONYMS.get(word, word) for word in words)
    text = text[:1].upper() + text[1:]
    return f"{text} ({unit})" if unit else text


def has_template(value: Any) -> bool:
    return isinstance(value, str) and bool(_TEMPLATE.search(value))


class ConfigForm:
    """Renders `value` (a config dict) against `schema` in the current NiceGUI container.

    Every edit changes `value` in place and calls `on_change(value)`.
    """

    def __init__(
        self,
        schema: dict[str, Any],
        value: dict[str, Any],
        *,
        on_change: OnChange,
        names: Callable[[], list[str]] = list,
        credentials: list[str] | None = None,
        on_add_credential: Callable[[], Awaitable[str | None]] | None = None,
        test_prefix: str = "field",
        descriptions: dict[str, str] | None = None,
        option_labels: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.root = schema
        self.value = value
        self.on_change = on_change
        self.names = names
        self.credentials = credentials or []
        self.on_add_credential = on_add_credential
        self.test_prefix = test_prefix
        self.descriptions = descriptions or {}
        self.option_labels = option_labels or {}
        self._problem_labels: dict[str, ui.label] = {}
        with ui.column().classes("w-full gap-4") as self.container:
            self._object_fields(schema, value, "")
            if not schema.get("properties"):
                ui.label("This step has nothing to set up.").classes("text-sm text-slate-500")

    # -- problems -----------------------------------------------------------------------------

    def show_problems(self, problems: dict[str, str]) -> None:
        """Show each problem under its field (paths such as 'url' or 'routes.0.port')."""
        for path, label in self._problem_labels.items():
            message = problems.get(path)
            if message is None:  # a problem with a nested field shows on its section too
                message = next((m for p, m in problems.items() if p.startswith(f"{path}.")), "")
            label.text = message
            label.set_visibility(bool(message))

    # -- schema helpers -----------------------------------------------------------------------

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = {**self.root.get("$defs", {}).get(name, {}), **_without(schema, "$ref")}
        return schema

    def _unwrap_nullable(self, schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """(the schema without its `null` option, whether null is allowed)."""
        options = schema.get("anyOf")
        if not options:
            return self._resolve(schema), False
        kept = [option for option in options if option.get("type") != "null"]
        nullable = len(kept) < len(options)
        if len(kept) == 1:  # the field's own words (description, default) win over its type's
            return {**self._resolve(kept[0]), **_without(schema, "anyOf")}, nullable
        return {**_without(schema, "anyOf"), "anyOf": kept}, nullable

    # -- rendering ----------------------------------------------------------------------------

    def _object_fields(self, schema: dict[str, Any], target: dict[str, Any], prefix: str) -> None:
        schema = self._resolve(schema)
        required = set(schema.get("required", []))
        for name, field_schema in schema.get("properties", {}).items():
            self._field(name, field_schema, target, f"{prefix}{name}", name in required)

    def _field(
        self, key: str, schema: dict[str, Any], target: dict[str, Any], path: str, required: bool
    ) -> None:
        inner, nullable = self._unwrap_nullable(schema)
        label = field_label(key)
        description = self.descriptions.get(path) or inner.get("description") or ""
        with test_id(ui.column().classes("w-full gap-1"), f"{self.test_prefix}-{path}"):
            if key == "credential" and inner.get("type") == "string":
                self._credential(key, target, label, nullable or not required)
            elif "const" in inner:
                target[key] = inner["const"]
                return
            elif "enum" in inner:
                self._choice(key, inner, target, label, path, nullable or not required)
            elif inner.get("oneOf") and inner.get("discriminator"):
                self._union(key, inner, target, label, path, nullable or not required)
            elif inner.get("type") == "boolean":
                self._switch(key, inner, target, label)
            elif inner.get("type") in ("integer", "number"):
                self._number(key, inner, target, label, nullable or not required)
            elif inner.get("type") == "string":
                self._text(key, inner, target, label, path, nullable or not required)
            elif inner.get("type") == "object" and inner.get("properties"):
                self._section(key, inner, target, label, path, nullable or not required)
            elif inner.get("type") == "array" and self._is_model(inner.get("items", {})):
                self._list_of_models(key, inner, target, label, path)
            else:
                self._json(key, inner, target, label, path, required)
            if description:
                ui.label(description).classes("text-xs text-slate-500 leading-snug")
            problem = ui.label().classes("text-xs text-negative").mark(f"problem-{path}")
            problem.set_visibility(False)
            self._problem_labels[path] = problem

    def _is_model(self, schema: dict[str, Any]) -> bool:
        resolved = self._resolve(schema)
        return resolved.get("type") == "object" and bool(resolved.get("properties"))

    def _changed(self) -> None:
        self.on_change(self.value)

    def _set(self, target: dict[str, Any], key: str, value: Any, *, drop_empty: bool) -> None:
        if drop_empty and (value is None or value == ""):
            target.pop(key, None)
        else:
            target[key] = value
        self._changed()

    def _text(
        self,
        key: str,
        schema: dict[str, Any],
        target: dict[str, Any],
        label: str,
        path: str,
        optional: bool,
    ) -> None:
        is_expression = schema.get("format") == EXPRESSION_FORMAT
        current = target.get(key, schema.get("default"))
        box = (
            ui.textarea(label, value="" if current is None else str(current))
            .props("outlined dense autogrow rows=1")
            .classes("w-full")
        )
        if is_expression:
            box.props("input-class=font-mono")
        box.on_value_change(lambda e: self._set(target, key, e.value, drop_empty=optional))
        self._insert_menu(box, bare=is_expression)

    def _insert_menu(self, box: ui.textarea, *, bare: bool) -> None:
        """A `{ }` button in the box listing the values the step can use, to insert one."""
        with (
            box.add_slot("append"),
            ui.button(icon="data_object")
            .props("flat round dense size=sm color=grey-7")
            .tooltip("Insert a value from the input or an earlier step"),
        ):
            menu = ui.menu().props("auto-close")

            def fill() -> None:
                menu.clear()
                with menu:
                    names = self.names()
                    if not names:
                        ui.item("Nothing to insert yet").props("disable")
                    for name in names:
                        snippet = name if bare else f"{{{{ {name} }}}}"
                        ui.item(
                            snippet,
                            on_click=lambda s=snippet: _append(box, s),
                        ).classes("font-mono text-sm")

            menu.on("before-show", fill)

    def _number(
        self, key: str, schema: dict[str, Any], target: dict[str, Any], label: str, optional: bool
    ) -> None:
        integer = schema.get("type") == "integer"
        current = target.get(key, schema.get("default"))
        number = (
            ui.number(
                label,
                value=current,
                min=schema.get("minimum", schema.get("exclusiveMinimum")),
                max=schema.get("maximum"),
                precision=0 if integer else None,
                step=1 if integer else None,
            )
            .props("outlined dense")
            .classes("w-full")
        )
        if optional and current is None:
            number.props('placeholder="empty"')

        def changed(value: Any) -> None:
            if value is not None and integer:
                value = int(value)
            self._set(target, key, value, drop_empty=optional)

        number.on_value_change(lambda e: changed(e.value))

    def _switch(self, key: str, schema: dict[str, Any], target: dict[str, Any], label: str) -> None:
        current = bool(target.get(key, schema.get("default", False)))
        ui.switch(
            label,
            value=current,
            on_change=lambda e: self._set(target, key, bool(e.value), drop_empty=False),
        )

    def _choice(
        self,
        key: str,
        schema: dict[str, Any],
        target: dict[str, Any],
        label: str,
        path: str,
        optional: bool,
    ) -> None:
        named = self.option_labels.get(path, {})
        options: dict[Any, str] = {value: named.get(value, str(value)) for value in schema["enum"]}
        if optional and schema.get("default") is None:
            options = {None: "— not set —", **options}
        current = target.get(key, schema.get("default"))
        ui.select(
            options,
            label=label,
            value=current if current in options else None,
            on_change=lambda e: self._set(target, key, e.value, drop_empty=optional),
        ).props("outlined dense").classes("w-full")

    def _credential(self, key: str, target: dict[str, Any], label: str, optional: bool) -> None:
        current = target.get(key)
        options: dict[Any, str] = {}
        if optional:
            options[None] = "— none (use the environment's key) —"
        for name in self.credentials:
            options[name] = name
        if current and current not in options:
            options[current] = f"{current} (not added yet)"
        if self.on_add_credential is not None:
            options[ADD_CREDENTIAL] = "+ Add credential…"
        picker = (
            ui.select(options, label=label, value=current if current in options else None)
            .props("outlined dense")
            .classes("w-full")
        )
        test_id(picker, "credential-picker")
        if current and current not in self.credentials:
            ui.label(
                f"There is no credential called '{current}' yet: add it here or in Settings."
            ).classes("text-xs text-orange-800")

        async def changed(value: Any) -> None:
            if value != ADD_CREDENTIAL:
                self._set(target, key, value, drop_empty=True)
                return
            added = await self.on_add_credential() if self.on_add_credential else None
            if added:
                self.credentials.append(added)
                options.pop(ADD_CREDENTIAL, None)
                options[added] = added
                options[ADD_CREDENTIAL] = "+ Add credential…"
                picker.set_options(options)
            picker.value = added or target.get(key)

        picker.on_value_change(lambda e: changed(e.value))

    def _section(
        self,
        key: str,
        schema: dict[str, Any],
        target: dict[str, Any],
        label: str,
        path: str,
        optional: bool,
    ) -> None:
        present = isinstance(target.get(key), dict)
        with ui.column().classes("w-full gap-2 border-l-2 border-slate-200 pl-3"):

            def build() -> None:
                body.clear()
                if isinstance(target.get(key), dict):
                    with body:
                        self._object_fields(schema, target[key], f"{path}.")

            def toggle(on: bool) -> None:
                if on:
                    target.setdefault(key, {})
                else:
                    target.pop(key, None)
                build()
                self._changed()

            if optional:
                ui.switch(label, value=present, on_change=lambda e: toggle(bool(e.value)))
            else:
                ui.label(label).classes("text-sm font-medium")
                target.setdefault(key, {})
            body = ui.column().classes("w-full gap-3")
            build()

    def _union(
        self,
        key: str,
        schema: dict[str, Any],
        target: dict[str, Any],
        label: str,
        path: str,
        optional: bool,
    ) -> None:
        """A choice of kind (the discriminator), then that kind's own fields."""
        tag = schema["discriminator"]["propertyName"]
        variants = {}
        for option in schema["oneOf"]:
            resolved = self._resolve(option)
            tag_schema = resolved.get("properties", {}).get(tag, {})
            value = tag_schema.get("const") or (tag_schema.get("enum") or [None])[0]
            variants[value] = resolved
        options: dict[Any, str] = {None: "— none —"} if optional else {}
        for value, resolved in variants.items():
            title = resolved.get("properties", {}).get(tag, {}).get("description") or value
            options[value] = f"{value}: {title}"
        current = target.get(key) if isinstance(target.get(key), dict) else None
        with ui.column().classes("w-full gap-2 border-l-2 border-slate-200 pl-3"):
            kind = (
                ui.select(options, label=label, value=(current or {}).get(tag))
                .props("outlined dense")
                .classes("w-full")
            )
            body = ui.column().classes("w-full gap-3")

            def build() -> None:
                body.clear()
                chosen = target.get(key)
                if isinstance(chosen, dict) and chosen.get(tag) in variants:
                    with body:
                        self._object_fields(variants[chosen[tag]], chosen, f"{path}.")

            def changed(value: Any) -> None:
                if value is None:
                    target.pop(key, None)
                else:
                    previous: dict[str, Any] = (
                        target[key] if isinstance(target.get(key), dict) else {}
                    )
                    fields = variants[value].get("properties", {})
                    target[key] = {k: v for k, v in previous.items() if k in fields}
                    target[key][tag] = value
                build()
                self._changed()

            kind.on_value_change(lambda e: changed(e.value))
            build()

    def _list_of_models(
        self, key: str, schema: dict[str, Any], target: dict[str, Any], label: str, path: str
    ) -> None:
        item_schema = self._resolve(schema["items"])
        noun = item_schema.get("title", "item").lower()
        if not isinstance(target.get(key), list):
            target[key] = []
        items: list[Any] = target[key]
        ui.label(label).classes("text-sm font-medium")
        holder = ui.column().classes("w-full gap-2")

        def build() -> None:
            holder.clear()
            with holder:
                for index, item in enumerate(items):
                    if not isinstance(item, dict):
                        continue
                    with ui.card().classes("w-full p-3 gap-2 shadow-none border border-slate-200"):
                        with ui.row().classes("w-full items-center justify-between"):
                            ui.label(f"{noun.capitalize()} {index + 1}").classes(
                                "text-xs uppercase text-slate-500"
                            )
                            ui.button(icon="close", on_click=lambda i=index: remove(i)).props(
                                "flat round dense size=sm"
                            ).tooltip(f"Remove this {noun}")
                        self._object_fields(item_schema, item, f"{path}.{index}.")
                ui.button(f"Add {noun}", icon="add", on_click=add).props("flat dense no-caps")

        def add() -> None:
            items.append({})
            build()
            self._changed()

        def remove(index: int) -> None:
            del items[index]
            build()
            self._changed()

        build()

    def _json(
        self,
        key: str,
        schema: dict[str, Any],
        target: dict[str, Any],
        label: str,
        path: str,
        required: bool,
    ) -> None:
        """Dicts, lists and free values: JSON text; text that is not JSON is kept as text."""
        kind = schema.get("type")
        free = kind not in ("object", "array")
        current = target.get(key, schema.get("default"))
        ui.label(label).classes("text-sm font-medium")
        editor = (
            ui.codemirror(_json_text(current, free=free), language="JSON", line_wrapping=True)
            .classes("w-full border border-slate-300 rounded text-sm")
            .style("height: auto; max-height: 16rem")
        )
        note = ui.label().classes("text-xs text-negative")
        note.set_visibility(False)
        if free:
            ui.label(
                "JSON ({…}, […], numbers, true) is kept as such; anything else is text, "
                "and may use {{ templates }}."
            ).classes("text-xs text-slate-400")

        def changed(text: str) -> None:
            parsed, problem = _parse_json(text, kind)
            note.text = problem or ""
            note.set_visibility(bool(problem))
            if problem:
                return
            if parsed is None and not required:
                target.pop(key, None)
                self._changed()
                return
            self._set(target, key, parsed, drop_empty=False)

        editor.on_value_change(lambda e: changed(e.value or ""))


def _append(box: ui.textarea, snippet: str) -> None:
    current = box.value or ""
    box.value = f"{current}{'' if not current or current.endswith(' ') else ' '}{snippet}"


def _without(mapping: dict[Any, Any], key: Any) -> dict[Any, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _json_text(value: Any, *, free: bool) -> str:
    if value is None:
        return ""
    if free and isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # plain text or a template: shown as typed
    return json.dumps(value, indent=2, ensure_ascii=False)


def _parse_json(text: str, kind: str | None) -> tuple[Any, str | None]:
    """(value, None), or (None, what is wrong in plain words)."""
    if not text.strip():
        return None, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        if kind in ("object", "array"):
            return None, (
                f"This is not valid JSON yet: {exc.msg.lower()} at line {exc.lineno}, "
                f"column {exc.colno}."
            )
        return text, None
    if kind == "object" and not isinstance(value, dict):
        return None, "This must be a JSON object: names and values in { }."
    if kind == "array" and not isinstance(value, list):
        return None, "This must be a JSON list: values in [ ]."
    return value, None
