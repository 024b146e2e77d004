"""`/settings`: credentials, model prices and how long run history is kept."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable

from nicegui import ui

from nodes.ai.prices import PRICE_FILE
from storage import CredentialInfo, NotFound
from studio.components.credentials import add_credential_dialog, kind_title
from studio.components.layout import answer_of, empty_state, page_title, test_id
from studio.components.wording import ago
from studio.runtime import Runtime


async def settings_page(runtime: Runtime) -> None:
    page_title("Settings", "Credentials for your steps, model prices and run history.")
    with ui.card().classes("w-full shadow-none border border-slate-200 gap-3"):
        with ui.row().classes("w-full items-center justify-between"):
            with ui.column().classes("gap-0"):
                ui.label("Credentials").classes("text-lg font-semibold")
                ui.label(
                    "API keys and secrets, encrypted on this machine. Steps name the one they use."
                ).classes("text-sm text-slate-500")
            test_id(
                ui.button(
                    "Add credential",
                    icon="key",
                    on_click=lambda: add_credential_dialog(
                        runtime, on_saved=lambda _: listing.refresh()
                    ),
                ),
                "add-credential",
            )

        @ui.refreshable
        async def listing() -> None:
            await credential_list(runtime, on_deleted=listing.refresh)

        await listing()
    _prices_card()
    _retention_card(runtime)


async def credential_list(runtime: Runtime, *, on_deleted: Callable[[], Awaitable[None]]) -> None:
    """Every credential by name, kind and field names; the values are never shown."""
    credentials = await runtime.db.credentials.list()
    if not credentials:
        empty_state(
            "key",
            "No credentials yet",
            "Add your OpenAI or Anthropic API key here, or rely on the OPENAI_API_KEY and "
            "ANTHROPIC_API_KEY environment variables.",
        )
        return
    for info in credentials:
        _credential_row(runtime, info, on_deleted)


def _credential_row(
    runtime: Runtime, info: CredentialInfo, on_deleted: Callable[[], Awaitable[None]]
) -> None:
    async def delete() -> None:
        with ui.dialog() as dialog, ui.card():
            ui.label(f"Delete credential “{info.name}”?").classes("text-lg font-semibold")
            ui.label("Steps that use it will fail until you add it again.").classes(
                "text-slate-600"
            )
            with ui.row().classes("w-full justify-end"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
                test_id(
                    ui.button("Delete", color="negative", on_click=lambda: dialog.submit(True)),
                    "confirm-delete",
                )
        confirmed = await answer_of(dialog)
        if confirmed:
            with contextlib.suppress(NotFound):
                await runtime.db.credentials.delete(info.name)
            ui.notify(f"Deleted credential {info.name}.")
            await on_deleted()

    with ui.row().classes("w-full items-center border-t border-slate-100 pt-3 no-wrap"):
        ui.icon("key", size="1.2rem").classes("text-slate-400")
        with ui.column().classes("gap-0 flex-grow"):
            ui.label(info.name).classes("font-medium")
            ui.label(
                f"{kind_title(info.type)} · fields: {', '.join(info.fields) or 'none'} · "
                f"changed {ago(info.updated_at)}"
            ).classes("text-xs text-slate-500")
        ui.label("•••••••• (hidden)").classes("text-slate-400 text-sm")
        ui.button(icon="delete", on_click=delete).props("flat round dense color=grey-7").tooltip(
            f"Delete {info.name}"
        )


def _prices_card() -> None:
    models = json.loads(PRICE_FILE.read_text(encoding="utf-8"))["models"]
    with ui.card().classes("w-full shadow-none border border-slate-200 gap-3"):
        ui.label("Model prices").classes("text-lg font-semibold")
        ui.label(
            "What AI steps cost, in US dollars per million tokens. Run records show each "
            "step's cost from these prices. They ship in nodes/ai/prices.json; override or add "
            "prices with nodes.ai.register_prices({...}) from Python."
        ).classes("text-sm text-slate-500")
        rows = [
            {"model": model, "input": f"${price['input']:g}", "output": f"${price['output']:g}"}
            for model, price in sorted(models.items())
        ]
        ui.table(
            columns=[
                {"name": "model", "label": "Model", "field": "model", "align": "left"},
                {"name": "input", "label": "Input / 1M", "field": "input"},
                {"name": "output", "label": "Output / 1M", "field": "output"},
            ],
            rows=rows,
            row_key="model",
            pagination=10,
        ).props("flat dense").classes("w-full")


def _retention_card(runtime: Runtime) -> None:
    settings = runtime.settings
    with ui.card().classes("w-full shadow-none border border-slate-200 gap-2"):
        ui.label("Run history").classes("text-lg font-semibold")
        ui.label(
            f"Finished runs are kept {settings.retention_days} days, and at most "
            f"{settings.retention_max_runs} runs per flow (the newest)."
        ).mark("retention-defaults")
        ui.label(
            "Change the defaults with the FLOWLOOM_RETENTION_DAYS and "
            "FLOWLOOM_RETENTION_MAX_RUNS environment variables; a flow can keep its runs "
            "longer or shorter in its Flow settings in the editor."
        ).classes("text-sm text-slate-500")
