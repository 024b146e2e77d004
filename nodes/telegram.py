"""Telegram: start a flow from a bot's messages, and send messages as the bot.

The bot's credential holds `token` (from @BotFather) and, for the trigger, `secret_token`:
the value given to Telegram's `setWebhook` as `secret_token`, which Telegram then sends in
the `X-Telegram-Bot-Api-Secret-Token` header of every update, so FlowLoom knows an update
comes from Telegram. Register the trigger's webhook URL (shown when the flow is activated)
with `https://api.telegram.org/bot<token>/setWebhook?url=<url>&secret_token=<secret>`.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field, field_validator

from engine.errors import NodeError
from engine.node import NodeConfig, NodeType, StepContext
from nodes.values import ScalarText, describe_value

TELEGRAM_API = "https://api.telegram.org"
MAX_TEXT_CHARS = 4096  # Telegram's limit for one message
#: The parts of an update that carry a message, in the order they are looked for.
MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")


class TelegramTrigger(NodeType):
    type = "trigger.telegram"
    title = "Telegram message"
    icon = "send"
    category = "Triggers"
    description = (
        "Starts the flow for every update a Telegram bot receives (messages sent to the bot)."
    )
    is_trigger = True

    class Config(NodeConfig):
        credential: str | None = Field(
            default=None,
            description=(
                "The bot's stored credential; its secret_token field must match the "
                "X-Telegram-Bot-Api-Secret-Token header Telegram sends. Leave empty to accept "
                "every call."
            ),
        )

    async def run(self, ctx: StepContext, config: Config) -> Any:
        return ctx.input


def update_payload(update: dict[str, Any]) -> dict[str, Any]:
    """A Telegram update plus handy `chat_id`, `text` and `from` of its message (None when
    the update carries no message, such as a callback query without one)."""
    message: Any = next((update[k] for k in MESSAGE_KINDS if isinstance(update.get(k), dict)), None)
    callback = update.get("callback_query")
    if message is None and isinstance(callback, dict):
        message = callback.get("message") if isinstance(callback.get("message"), dict) else None
        sender, text = callback.get("from"), callback.get("data")
    else:
        message = message or {}
        sender, text = message.get("from"), message.get("text") or message.get("caption")
    chat = message.get("chat") if isinstance(message, dict) else None
    return {
        **update,
        "chat_id": chat.get("id") if isinstance(chat, dict) else None,
        "text": text,
        "from": sender,
    }


class TelegramSend(NodeType):
    type = "telegram.send"
    title = "Send Telegram message"
    icon = "send"
    category = "Channels"
    description = "Sends a text message as a Telegram bot to a chat."

    class Config(NodeConfig):
        credential: str = Field(
            min_length=1,
            description="The stored credential holding the bot's token (field: token).",
        )
        chat_id: ScalarText = Field(
            default="{{ trigger.chat_id }}",
            description="The chat to send to; by default the chat the triggering message came from.",
        )
        text: str = Field(
            description="What to send (up to 4096 characters), for example {{ nodes.Agent.text }}.",
        )
        parse_mode: Literal["MarkdownV2", "HTML", "Markdown"] | None = Field(
            default=None,
            description="How Telegram formats the text: MarkdownV2, HTML, or plain when empty.",
        )
        base_url: str = Field(
            default=TELEGRAM_API,
            description="The Bot API's address; change it only for a self-hosted Bot API server.",
        )
        timeout_s: float = Field(default=30, gt=0, le=300, description="Seconds to wait.")

        @field_validator("chat_id")
        @classmethod
        def _has_chat(cls, chat_id: str) -> str:
            if not chat_id.strip():
                raise ValueError("Say which chat to send to (a chat id, or @channelname).")
            return chat_id.strip()

    async def run(self, ctx: StepContext, config: Config) -> Any:
        fields = await ctx.credential(config.credential)
        token = fields.get("token") or fields.get("bot_token")
        if not token:
            raise NodeError(
                f"the credential '{config.credential}' has no 'token' field holding the bot's token."
            )
        if not config.text.strip():
            raise NodeError("the message text is empty; Telegram refuses empty messages.")
        text = config.text[:MAX_TEXT_CHARS]
        body: dict[str, Any] = {"chat_id": _chat(config.chat_id), "text": text}
        if config.parse_mode:
            body["parse_mode"] = config.parse_mode
        url = f"{config.base_url.rstrip('/')}/bot{token}/sendMessage"
        try:
            answer = await ctx.http.post(url, json=body, timeout=config.timeout_s)
        except httpx.HTTPError as exc:
            # The token is part of the URL: never put the URL in the message.
            raise NodeError(f"could not reach the Telegram Bot API: {type(exc).__name__}") from None
        try:
            reply = answer.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or not reply.get("ok"):
            reason = reply.get("description") if isinstance(reply, dict) else None
            raise NodeError(
                f"Telegram refused the message (HTTP {answer.status_code}): "
                f"{reason or describe_value(answer.text)}"
            )
        result = reply.get("result") or {}
        return {
            "message_id": result.get("message_id"),
            "chat_id": (result.get("chat") or {}).get("id", body["chat_id"]),
            "text": result.get("text", text),
        }


def _chat(chat_id: str) -> int | str:
    """Telegram takes a numeric chat id as a number and a channel as '@name'."""
    try:
        return int(chat_id)
    except ValueError:
        return chat_id
