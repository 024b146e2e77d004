"""What a trigger step shows above its form: a webhook's URL, a schedule's next fire times."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nicegui import ui

from studio.components.layout import test_id
from studio.runtime import Runtime
from studio.triggers import next_fire_times

FIRE_TIMES_SHOWN = 5


def describe_cron(cron: str) -> str:
    """A cron schedule in words ('Every 5 minutes'), or why it cannot be read."""
    from cron_descriptor import get_description  # type: ignore[import-untyped]

    try:
        return str(get_description(cron))
    except Exception as exc:
        return f"This schedule cannot be read: {exc}"


def _zone(config: dict[str, Any], document: dict[str, Any]) -> ZoneInfo:
    """The time zone a schedule is read in: its own, else the flow's, else UTC."""
    name = config.get("timezone") or (document.get("settings") or {}).get("timezone") or "UTC"
    try:
        return ZoneInfo(str(name))
    except (ValueError, ZoneInfoNotFoundError):
        return ZoneInfo("UTC")


def upcoming(config: dict[str, Any], document: dict[str, Any]) -> list[datetime]:
    """The next fire times of a schedule config, [] when it is incomplete or invalid."""
    if not config.get("cron") and not config.get("every_s"):
        return []
    try:
        return next_fire_times(config, document, FIRE_TIMES_SHOWN)
    except Exception:
        return []


async def webhook_panel(
    runtime: Runtime, flow_id: str, node_id: str, base_url: str, active: bool
) -> None:
    """The URL to call, with a copy button; whether it is listening right now."""
    token = await runtime.db.triggers.webhook_token(flow_id, node_id)
    url = f"{base_url.rstrip('/')}/hooks/{token}"
    with ui.column().classes("w-full gap-2 bg-slate-50 border border-slate-200 rounded p-3"):
        ui.label("Webhook address").classes("text-sm font-medium")
        with ui.row().classes("w-full items-center no-wrap gap-1"):
            test_id(
                ui.input(value=url).props("readonly outlined dense").classes("flex-grow font-mono"),
                "webhook-url",
            )

            def copy_address() -> None:
                ui.clipboard.write(url)
                ui.notify("Copied the address.")

            ui.button(icon="content_copy", on_click=copy_address).props("flat round dense").tooltip(
                "Copy the address"
            )
        ui.label(
            "Send a POST request with a JSON body to this address to start the flow. Keep it "
            "secret: whoever has it can start the flow."
        ).classes("text-xs text-slate-500")
        if not active:
            ui.label("It listens only while the flow is active (the switch at the top).").classes(
                "text-xs text-orange-800"
            )


def schedule_panel(config: dict[str, Any], document: dict[str, Any], active: bool) -> None:
    """The schedule in words and its next five fire times, updated as the form changes."""
    with ui.column().classes("w-full gap-1 bg-slate-50 border border-slate-200 rounded p-3"):
        ui.label("When it runs").classes("text-sm font-medium")
        words = ui.label().classes("text-sm").mark("schedule-description")
        times = ui.column().classes("gap-0").mark("schedule-next-times")
        note = ui.label().classes("text-xs text-orange-800")

    shown: dict[str, str] = {}

    def refresh() -> None:
        fingerprint = f"{config.get('cron')}|{config.get('every_s')}|{config.get('timezone')}"
        if shown.get("fingerprint") == fingerprint:
            return
        shown["fingerprint"] = fingerprint
        if config.get("cron"):
            words.text = describe_cron(str(config["cron"]))
        elif config.get("every_s"):
            words.text = f"Every {float(config['every_s']):g} seconds"
        else:
            words.text = "Set a cron schedule or a number of seconds below."
        times.clear()
        with times:
            coming = upcoming(config, document)
            zone = _zone(config, document)
            if coming:
                ui.label(f"Next times ({zone.key}):").classes("text-xs text-slate-500")
            for moment in coming:
                ui.label(moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M:%S")).classes(
                    "text-xs font-mono"
                )
        note.text = "" if active else "It fires only while the flow is active."

    refresh()
    ui.timer(1.0, refresh)
