"""How run and step statuses look: a coloured chip with a word a person understands."""

from __future__ import annotations

from nicegui import ui

#: status → (label, Quasar colour, icon)
STATUS_LOOK: dict[str, tuple[str, str, str]] = {
    "queued": ("Queued", "grey-6", "schedule"),
    "running": ("Running", "blue-6", "autorenew"),
    "succeeded": ("Succeeded", "green-7", "check_circle"),
    "failed": ("Failed", "red-7", "error"),
    "cancelled": ("Cancelled", "grey-7", "block"),
    "interrupted": ("Interrupted", "orange-8", "power_off"),
    "waiting": ("Waiting for a person", "amber-8", "front_hand"),
    "skipped": ("Skipped", "grey-5", "redo"),
    "pinned": ("Pinned", "purple-6", "push_pin"),
}


def status_label(status: str) -> str:
    return STATUS_LOOK.get(status, (status.capitalize(), "", ""))[0]


def status_chip(status: str, *, dense: bool = True) -> ui.chip:
    """A small chip naming the status in words, in its colour."""
    label, color, icon = STATUS_LOOK.get(status, (status.capitalize(), "grey-6", "help"))
    chip = ui.chip(label, icon=icon, color=color, text_color="white").classes("m-0")
    chip.props("dense" if dense else "").mark(f"status-{status}")
    return chip
