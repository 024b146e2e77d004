"""Checking who calls a webhook: a secret header, or a signature made the way a sender does.

Every comparison is constant-time. The presets, each an HMAC-SHA256 with the credential's
`secret` as the key:

| preset | header | what is signed |
| --- | --- | --- |
| `github` | `X-Hub-Signature-256: sha256=<hex>` | the raw body |
| `stripe` | `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=…]` | `"<t>.<body>"` |
| `slack` | `X-Slack-Signature: v0=<hex>`, `X-Slack-Request-Timestamp: <t>` | `"v0:<t>:<body>"` |
| `generic` | `X-Signature: sha256=<hex>`, optional `X-Timestamp: <t>` | the body, or `"<t>.<body>"` with a timestamp |

A delivery whose timestamp is more than five minutes away from now is refused as stale (a
replayed old request), as Stripe's and Slack's own libraries do.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

STALE_AFTER_S = 300.0
PRESETS = ("github", "stripe", "slack", "generic")


class AuthFailed(Exception):
    """The call did not prove who it is from; the message says what was wrong."""


def check_header(headers: Mapping[str, str], name: str, expected: str) -> None:
    """The header `name` must equal `expected` (headers keyed by lower-case name)."""
    sent = headers.get(name.lower())
    if sent is None:
        raise AuthFailed(f"The {name} header is missing.")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise AuthFailed(f"The {name} header does not hold the expected secret.")


def check_signature(
    preset: str,
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
) -> None:
    """Check the signature `preset`'s sender puts on `body`; AuthFailed if it is wrong."""
    if not secret:
        raise AuthFailed("The webhook's signing secret is empty.")
    key = secret.encode()
    now = time.time() if now is None else now
    if preset == "github":
        _expect_hex(headers, "x-hub-signature-256", "sha256=", _sign(key, body))
    elif preset == "stripe":
        _check_stripe(key, body, headers, now)
    elif preset == "slack":
        timestamp = _timestamp(headers, "x-slack-request-timestamp", now)
        signed = b"v0:" + timestamp.encode() + b":" + body
        _expect_hex(headers, "x-slack-signature", "v0=", _sign(key, signed))
    elif preset == "generic":
        timestamp_header = headers.get("x-timestamp")
        signed = body
        if timestamp_header is not None:
            signed = _timestamp(headers, "x-timestamp", now).encode() + b"." + body
        _expect_hex(headers, "x-signature", "sha256=", _sign(key, signed))
    else:
        raise AuthFailed(f"'{preset}' is not a signature preset; use one of {', '.join(PRESETS)}.")


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: how FlowLoom signs what it sends (X-FlowLoom-Signature)."""
    return "sha256=" + _sign(secret.encode(), body)


def _sign(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _expect_hex(headers: Mapping[str, str], name: str, prefix: str, expected: str) -> None:
    sent = headers.get(name)
    if sent is None:
        raise AuthFailed(f"The {_title(name)} header is missing.")
    if not sent.startswith(prefix) or not hmac.compare_digest(
        sent[len(prefix) :].strip().lower().encode(), expected.encode()
    ):
        raise AuthFailed(f"The {_title(name)} signature does not match the body.")


def _timestamp(headers: Mapping[str, str], name: str, now: float) -> str:
    sent = headers.get(name)
    if sent is None:
        raise AuthFailed(f"The {_title(name)} header is missing.")
    sent = sent.strip()
    _check_fresh(sent, now, _title(name))
    return sent


def _check_fresh(timestamp: str, now: float, what: str) -> None:
    try:
        at = float(timestamp)
    except ValueError:
        raise AuthFailed(f"The {what} timestamp '{timestamp[:40]}' is not a Unix time.") from None
    if abs(now - at) > STALE_AFTER_S:
        raise AuthFailed(
            f"The {what} timestamp is more than {STALE_AFTER_S / 60:.0f} minutes old (or "
            "ahead): the delivery is stale or replayed."
        )


def _check_stripe(key: bytes, body: bytes, headers: Mapping[str, str], now: float) -> None:
    sent = headers.get("stripe-signature")
    if sent is None:
        raise AuthFailed("The Stripe-Signature header is missing.")
    timestamp, signatures = "", []
    for item in sent.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamp = value
        elif name == "v1":
            signatures.append(value.lower())
    if not timestamp or not signatures:
        raise AuthFailed("The Stripe-Signature header has no t= timestamp or v1= signature.")
    _check_fresh(timestamp, now, "Stripe-Signature")
    expected = _sign(key, timestamp.encode() + b"." + body).encode()
    # Check every v1 (Stripe sends several while a secret is being rolled), without stopping
    # at the first match, so the time taken says nothing about which matched.
    matched = False
    for signature in signatures:
        matched |= hmac.compare_digest(signature.encode(), expected)
    if not matched:
        raise AuthFailed("The Stripe-Signature signature does not match the body.")


def _title(header: str) -> str:
    return "-".join(part.capitalize() for part in header.split("-"))
