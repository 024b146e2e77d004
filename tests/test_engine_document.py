"""The flow document: round trips, schema versions."""

from __future__ import annotations

import json

import pytest

from engine import (
    SCHEMA,
    DocumentError,
    SchemaVersionError,
    load_document,
    parse_document,
    validate,
)
from tests.documents import chain, manual, step


def test_unknown_keys_survive_a_round_trip() -> None:
    raw = chain(manual(), step("set", "data.set", {"values": {"a": 1}}))
    raw["x_canvas"] = {"zoom": 1.5}
    raw["nodes"][1]["x_color"] = "teal"
    raw["nodes"][1]["settings"] = {"retries": 2, "x_note": "keep me"}
    raw["edges"][0]["x_label"] = "then"

    again = parse_document(raw).to_dict()

    assert again["x_canvas"] == {"zoom": 1.5}
    assert again["nodes"][1]["x_color"] == "teal"
    assert again["nodes"][1]["settings"] == {"retries": 2, "x_note": "keep me"}
    assert again["edges"][0]["x_label"] == "then"
    assert parse_document(again).to_dict() == again


def test_newer_schema_is_refused_naming_the_version_this_flowloom_reads() -> None:
    raw = chain(manual())
    raw["schema"] = "flowloom/2"

    with pytest.raises(SchemaVersionError) as caught:
        parse_document(raw)

    assert SCHEMA in str(caught.value)
    assert "newer" in str(caught.value)
    problems = validate(raw)
    assert [p.code for p in problems] == ["schema"]
    assert SCHEMA in problems[0].message


def test_foreign_schema_is_refused() -> None:
    with pytest.raises(SchemaVersionError, match="Unknown schema 'n8n/1'"):
        parse_document({"schema": "n8n/1", "nodes": []})


def test_a_document_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(DocumentError, match="JSON object"):
        parse_document([1, 2])


def test_load_document_names_the_file_and_line_of_broken_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "flow.json"
    path.write_text('{"schema": "flowloom/1",\n "nodes": [}', encoding="utf-8")

    with pytest.raises(DocumentError) as caught:
        load_document(path)

    assert str(path) in str(caught.value)
    assert "line 2" in str(caught.value)


def test_load_document_reads_a_saved_flow(tmp_path) -> None:  # type: ignore[no-untyped-def]
    raw = chain(manual())
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(raw), encoding="utf-8")

    assert load_document(path) == raw
