"""Card and suggestion ids: UUID version 7 (RFC 9562), whose first 48 bits are the time of
issue in milliseconds.

Cards are recorded in the store off the request thread, so feedback can arrive (at another
worker, say) a moment before its card is recorded. A uuid that the store does not know but
that says it was issued within RECORDING_GRACE_S may be such a card: the feedback is
answered 503 with Retry-After, never 404 (which an EHR does not retry). A forged recent
uuid gains nothing: the answer depends only on the uuid sent, never on whether a card
exists for another client.
"""

from __future__ import annotations

import secrets
import time
import uuid

RECORDING_GRACE_S = 10.0
_MS_BITS = 48


def new_id() -> str:
    """A UUIDv7: milliseconds since the epoch, version 7, variant 10, 74 random bits."""
    milliseconds = time.time_ns() // 1_000_000 & ((1 << _MS_BITS) - 1)
    random = secrets.randbits(74)
    value = (
        milliseconds << 80
        | 0x7 << 76
        | (random >> 62) << 64
        | 0b10 << 62
        | (random & ((1 << 62) - 1))
    )
    return str(uuid.UUID(int=value))


def issued_recently(card_id: str, now_s: float | None = None) -> bool:
    """Whether `card_id` is a UUIDv7 stamped within the last RECORDING_GRACE_S seconds."""
    try:
        parsed = uuid.UUID(card_id)
    except ValueError:
        return False
    if parsed.version != 7:
        return False
    stamped = (parsed.int >> 80) / 1000
    now = time.time() if now_s is None else now_s
    return now - RECORDING_GRACE_S <= stamped <= now + 1
