"""Which FHIR servers the service may connect to (no SSRF through ``fhirServer``).

A URL is allowed when an allow-listed prefix has the same scheme, host and port and its path
is a whole-segment prefix of the URL's path: ``https://ehr.example/fhir`` allows
``https://ehr.example/fhir/R4`` but not ``https://ehr.example/fhirish`` nor
``https://ehr.example.evil.test/fhir``. A prefix without a port means the scheme's default
port; ``:*`` (``http://127.0.0.1:*``) means any port. URLs with credentials are never allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

ANY_PORT = -1


def _parts(url: str) -> tuple[str, str, int, list[str]] | None:
    any_port = False
    try:
        split = urlsplit(url)
        if split.netloc.endswith(":*"):
            split, any_port = split._replace(netloc=split.netloc[:-2]), True
        port = split.port
    except ValueError:
        return None
    if split.scheme not in ("http", "https") or not split.hostname or split.username:
        return None
    default = 443 if split.scheme == "https" else 80
    segments = [s for s in split.path.split("/") if s]
    return split.scheme, split.hostname.lower(), ANY_PORT if any_port else port or default, segments


def is_allowed(url: str, prefixes: Iterable[str]) -> bool:
    """True when `url` falls under one of the allow-listed prefixes."""
    target = _parts(url)
    if target is None:
        return False
    for prefix in prefixes:
        allowed = _parts(prefix)
        if (
            allowed
            and allowed[:2] == target[:2]
            and allowed[2] in (target[2], ANY_PORT)
            and target[3][: len(allowed[3])] == allowed[3]
        ):
            return True
    return False
