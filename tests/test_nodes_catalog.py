"""Every core node type is installed and describes itself well enough to build its form."""

from __future__ import annotations

from typing import Any

import pytest

from engine import default_registry

CORE_TYPES = {
    "trigger.manual": ("Start manually", "Triggers"),
    "trigger.webhook": ("Webhook", "Triggers"),
    "trigger.schedule": ("Schedule", "Triggers"),
    "data.set": ("Set values", "Data"),
    "data.template": ("Text from template", "Data"),
    "logic.condition": ("If / else", "Logic"),
    "logic.switch": ("Switch", "Logic"),
    "logic.merge": ("Merge", "Logic"),
    "logic.loop": ("Loop over items", "Logic"),
    "flow.delay": ("Wait", "Flow"),
    "flow.respond": ("Respond to webhook", "Flow"),
    "flow.subflow": ("Run another flow", "Flow"),
    "http.request": ("HTTP request", "HTTP"),
}


def fields_without_description(schema: dict[str, Any]) -> list[str]:
    missing = [
        name for name, prop in schema.get("properties", {}).items() if not prop.get("description")
    ]
    for definition in schema.get("$defs", {}).values():
        missing += fields_without_description(definition)
    return missing


def test_every_core_node_type_is_found_through_the_entry_points() -> None:
    assert set(CORE_TYPES) <= set(default_registry().names())


@pytest.mark.parametrize("type_name", sorted(CORE_TYPES))
def test_core_node_type_has_a_plain_title_category_icon_and_sentence(type_name: str) -> None:
    node_type = default_registry().get(type_name)
    assert node_type is not None
    described = node_type.describe()

    assert (described["title"], described["category"]) == CORE_TYPES[type_name]
    assert described["icon"] and described["icon"] != "widgets"
    assert described["description"].endswith(".")
    assert described["is_trigger"] == type_name.startswith("trigger.")


@pytest.mark.parametrize("type_name", sorted(CORE_TYPES))
def test_every_config_field_has_a_description_for_the_form(type_name: str) -> None:
    node_type = default_registry().get(type_name)
    assert node_type is not None

    assert fields_without_description(node_type.Config.model_json_schema()) == []
