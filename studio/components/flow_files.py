"""Flow documents coming in and going out: new flows, templates, imported and exported files."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import SCHEMA, DocumentError, validate

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "assets" / "examples"
UNTITLED = "Untitled flow"


@dataclass(frozen=True, slots=True)
class Template:
    """A bundled example flow offered as a starting point."""

    key: str
    title: str
    description: str
    document: dict[str, Any]

    @property
    def step_count(self) -> int:
        return len(self.document.get("nodes", []))


def load_templates(folder: Path = EXAMPLES_DIR) -> list[Template]:
    """Every example flow in `folder`, by title; files that cannot be read are left out."""
    templates = []
    for path in sorted(folder.glob("*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(document, dict):
            templates.append(
                Template(
                    key=path.stem,
                    title=str(document.get("name") or path.stem.replace("_", " ").capitalize()),
                    description=str(document.get("description") or ""),
                    document=document,
                )
            )
    return sorted(templates, key=lambda template: template.title)


def unique_name(wanted: str, taken: Iterable[str]) -> str:
    """`wanted` if no flow has it yet, else `wanted 2`, `wanted 3`, …"""
    names = {name.casefold() for name in taken}
    wanted = wanted.strip() or UNTITLED
    if wanted.casefold() not in names:
        return wanted
    number = 2
    while f"{wanted} {number}".casefold() in names:
        number += 1
    return f"{wanted} {number}"


def new_document(name: str) -> dict[str, Any]:
    """An empty flow that can already run: one 'Start' step to press Run on."""
    return {
        "schema": SCHEMA,
        "name": name,
        "description": "",
        "nodes": [
            {
                "id": "start",
                "type": "trigger.manual",
                "name": "Start",
                "position": {"x": 0, "y": 0},
                "config": {},
            }
        ],
        "edges": [],
    }


class ImportRefused(Exception):
    """A file that is not a flow FlowLoom can open; `problems` says why, in plain words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def read_flow_file(content: bytes, filename: str = "the file") -> dict[str, Any]:
    """The flow document in an uploaded file, or ImportRefused listing every problem."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(
            [f"{filename} is not a text file. Choose a flow exported from FlowLoom (.json)."]
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRefused(
            [
                f"{filename} is not valid JSON: {exc.msg.lower()} at line {exc.lineno}, "
                f"column {exc.colno}."
            ]
        ) from None
    if not isinstance(document, dict) or "nodes" not in document:
        raise ImportRefused(
            [f"{filename} holds JSON, but not a flow: a flow is an object with a list of 'nodes'."]
        )
    try:
        problems = validate(document)
    except DocumentError as exc:
        raise ImportRefused([str(exc)]) from None
    errors = [problem.message for problem in problems if problem.level == "error"]
    if errors:
        raise ImportRefused(errors)
    return document


def export_filename(name: str) -> str:
    """A file name for a flow: its name with only safe characters, plus `.flow.json`."""
    safe = "".join(c if c.isalnum() or c in "-_ " else "_" for c in name).strip() or "flow"
    return f"{safe.replace(' ', '_')}.flow.json"
