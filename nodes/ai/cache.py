"""An in-process cache of model answers, for steps that opt in with `cache_ttl_s`.

Two requests are the same when they go to the same provider and address with the same
request body (model, system prompt, messages, tools, temperature, answer format); whether
the answer is streamed does not matter. The cache keeps the most recently used answers only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

_STREAM_KEYS = frozenset({"stream", "stream_options"})


class ResponseCache:
    """Answers by request, each kept for its own time to live; least recently used go first."""

    def __init__(self, max_entries: int = 512) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    @staticmethod
    def key(provider: str, base_url: str | None, wire: Mapping[str, Any]) -> str:
        body = {k: v for k, v in wire.items() if k not in _STREAM_KEYS}
        text = json.dumps([provider, base_url or "", body], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, answer = entry
        if expires_at <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return answer

    def put(self, key: str, answer: dict[str, Any], ttl_s: float) -> None:
        self._entries[key] = (time.monotonic() + ttl_s, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


#: Shared by every AI step of the process.
RESPONSE_CACHE = ResponseCache()
