"""The hook request body decoded once, typed: the envelope read, each prefetch value kept
as its JSON bytes for the tolerant reader (cds_service.clinical.reader.Prefetched).

A generic parse builds a dict for every element of every resource, most of which no rule
reads, and the reader then validated each resource again: msgspec checks the whole body's
syntax in one pass and leaves the prefetch undecoded, and each resource is later decoded
straight into the light Structs of cds_service.clinical.fhir_read.

Numbers: msgspec reads integers exactly, whatever their size (orjson made floats of those
beyond 64 bits: the body had to be scanned for runs of 19 digits and sent to json), and
refuses a float beyond the doubles (1e400), where Python's json gives infinity. An element
it skips (one no Struct names) is checked as JSON but never converted: a number there
costs nothing and can make or hide no card. So the envelope and everything the rules read
get json's values and its 400s: a body msgspec refuses (malformed JSON, a lone surrogate,
deep nesting, a number out of range in the envelope, a prefetch that is no object) is
left to the generic parse, which answers as before (cds_service.api.hooks.parse_json); a
number out of range in a resource element the rules read is refused by the reader
(cds_service.clinical.reader.NumberOutOfRange) with json's words. An integer of more than
4300 digits, which json refuses to convert wherever it is, is looked for by sampling
(_may_hold_a_long_integer, a few microseconds where the 19-digit scan took a tenth of the
parse) and left to the generic parse too.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cds_service.clinical.reader import OneValue, Prefetched

UNSET = msgspec.UNSET


class _Envelope(msgspec.Struct):
    hook: Any = UNSET
    hookInstance: Any = UNSET
    fhirServer: Any = UNSET
    fhirAuthorization: Any = UNSET
    context: Any = UNSET


class _HookBody(_Envelope):
    """The body with its prefetch values read in the same pass (the common case)."""

    prefetch: dict[str, OneValue | None] | msgspec.UnsetType | None = UNSET


class _HookBodyAsBytes(_Envelope):
    """The body with its prefetch values left as bytes: when one is no OneValue."""

    prefetch: dict[str, msgspec.Raw] | msgspec.UnsetType | None = UNSET


_DECODERS = (msgspec.json.Decoder(_HookBody, strict=False), msgspec.json.Decoder(_HookBodyAsBytes))
_NULL = msgspec.Raw(b"null")
#: Half Python's 4300-digit limit on converting integers, less a little: a longer run of
#: digits holds two samples this far apart, with nothing but digits between them.
_STRIDE = 2000


def _may_hold_a_long_integer(raw: bytes) -> bool:
    """True when `raw` may hold a run of more than 4300 digits (and sometimes when it only
    holds one of 2000): every byte _STRIDE apart is looked at, and the stretch between two
    digits so sampled."""
    samples = raw[::_STRIDE]
    return any(
        samples[i : i + 2].isdigit() and raw[i * _STRIDE : (i + 1) * _STRIDE + 1].isdigit()
        for i in range(len(samples) - 1)
    )


def decode_hook_body(raw: bytes) -> dict[str, Any] | None:
    """The body as the dict the evaluator reads, prefetch values as Prefetched (None for
    null); None when it must be left to the generic parse (see the module's docstring)."""
    if _may_hold_a_long_integer(raw):
        return None
    decoded: _HookBody | _HookBodyAsBytes | None = None
    for decoder in _DECODERS:
        try:
            decoded = decoder.decode(raw)
            break
        except msgspec.ValidationError:  # a value the first cannot read; then none
            continue
        except (msgspec.DecodeError, RecursionError):  # not JSON, or too deep for msgspec
            return None
    if decoded is None:
        return None
    body = {
        name: value
        for name in _Envelope.__struct_fields__
        if (value := getattr(decoded, name)) is not UNSET
    }
    if decoded.prefetch is None or decoded.prefetch is UNSET:
        body.update({} if decoded.prefetch is UNSET else {"prefetch": None})
    elif isinstance(decoded, _HookBody):
        body["prefetch"] = {
            key: None if value is None else Prefetched(view=value)
            for key, value in decoded.prefetch.items()
        }
    else:
        body["prefetch"] = {
            key: None if value == _NULL else Prefetched(value)
            for key, value in decoded.prefetch.items()
        }
    return body
