"""The frame every page shares: a calm header with the FlowLoom name and the main sections."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from nicegui import ui

E = TypeVar("E", bound=ui.element)

#: (label, path, icon) of the sections in the header, in order.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("Flows", "/", "account_tree"),
    ("Runs", "/runs", "history"),
    ("Dashboard", "/dashboard", "insights"),
    ("Settings", "/settings", "settings"),
)

PRIMARY = "#4f46e5"


def test_id(element: E, name: str) -> E:
    """Give an element the `data-testid` browsers' tests use and the marker NiceGUI's use.

    Set as a value, never parsed as a props string: names may come from a flow's node ids.
    """
    element.props["data-testid"] = name
    element.update()
    return element.mark(name)


@contextmanager
def page_frame(section: str, *, wide: bool = False) -> Iterator[ui.element]:
    """The header, then a content column; `wide` gives the editor the whole window below it."""
    ui.colors(primary=PRIMARY, secondary="#64748b", accent="#0ea5e9", positive="#16a34a")
    ui.query("body").classes("bg-slate-50 text-slate-800")
    if wide:  # the editor and run pages reach the window's edges
        ui.query(".nicegui-content").classes("p-0 gap-0")
    with (
        ui.header().classes("bg-white text-slate-800 border-b border-slate-200 px-6 py-0"),
        ui.row().classes("w-full items-center gap-6 h-14 no-wrap"),
    ):
        with ui.link(target="/").classes("flex items-center gap-2 no-underline text-inherit"):
            ui.icon("account_tree", size="1.6rem", color="primary")
            ui.label("FlowLoom").classes("text-lg font-semibold tracking-tight")
        with ui.row().classes("gap-1 h-full items-stretch"):
            for label, path, icon in SECTIONS:
                _section_link(label, path, icon, active=label == section)
    classes = (
        "w-full h-[calc(100vh-3.5rem)] p-0 gap-0 no-wrap"
        if wide
        else "w-full max-w-6xl mx-auto px-6 py-8 gap-6"
    )
    with ui.column().classes(classes) as content:
        yield content


def _section_link(label: str, path: str, icon: str, *, active: bool) -> None:
    border = "border-primary text-primary" if active else "border-transparent text-slate-600"
    with ui.link(target=path).classes(
        f"flex items-center gap-1 px-3 no-underline border-b-2 {border} hover:text-primary"
    ):
        ui.icon(icon, size="1.1rem")
        ui.label(label).classes("text-sm font-medium")


def page_title(title: str, subtitle: str | None = None) -> None:
    """A page's heading and, below it, one line saying what the page is for."""
    with ui.column().classes("gap-1"):
        ui.label(title).classes("text-2xl font-semibold")
        if subtitle:
            ui.label(subtitle).classes("text-slate-500")


def empty_state(icon: str, title: str, hint: str) -> ui.column:
    """A friendly panel for a list with nothing in it yet."""
    with ui.column().classes(
        "w-full items-center gap-2 py-12 border border-dashed border-slate-300 rounded-lg"
    ) as box:
        ui.icon(icon, size="2.5rem").classes("text-slate-400")
        ui.label(title).classes("text-lg font-medium text-slate-600")
        ui.label(hint).classes("text-slate-500 text-center max-w-md")
    return box


async def answer_of(dialog: ui.dialog) -> Any:
    """Wait for what the person chose in `dialog`, then remove it (unless the page is gone)."""
    answer = await dialog
    if not dialog.client.is_deleted and not dialog.is_deleted:
        dialog.delete()
    return answer
