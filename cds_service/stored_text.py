"""The widths of the store's text columns, and what stored text may not hold.

One place for both sides: the SQLAlchemy columns (cds_service.feedback.models) are declared
with these widths, and what feeds them (the feedback wire model in cds_service.hooks.wire,
the trusted clients and the token's ``tenant`` in cds_service.auth) refuses what the
columns cannot hold. PostgreSQL refuses a longer string, a NUL character and text that is
not UTF-8 (a lone surrogate, which JSON's ``\\ud800`` escape can carry); a value refused
only by the database is a 503 "retry later" that no retry can cure, and it takes the valid
items of its transaction with it (issue 17). The migrations keep literal widths (each is a
snapshot of its time); a test checks that the migrated tables agree with these.
"""

from __future__ import annotations

#: A card's or suggestion's id, a service id, a topic code, a hook instance, a pseudonym.
ID_CHARS = 64
#: A coded override reason.
REASON_CODE_CHARS = 128
#: The code system of an override reason; also a client's issuer and tenant.
URI_CHARS = 255
CLIENT_CHARS = URI_CHARS
#: The clinician's free-text comment (a column without a width: this bound is the wire's).
USER_COMMENT_CHARS = 10_000
#: An accepted suggestion's id: stored in a JSON list, not in a column of its own.
SUGGESTION_ID_CHARS = 1024


def storable(value: str) -> str:
    """`value` when a database can hold it; ValueError (never quoting it) when it holds a
    NUL character or a lone surrogate."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (a lone surrogate is not)") from None
    return value
