"""One discipline for every URL the service fetches: JWK Sets, ``jku``, FHIR servers, search
``next`` links and Medication reads (no forged keys or SSRF through URL tricks).

A URL is checked as the HTTP library that fetches it will send it, never as written:
``requests`` (through urllib3) removes dot segments and decodes escaped unreserved
characters (``%2e`` becomes ``.``), so a raw ``/keys/../../uploads/x.json`` or
``/keys/%2e%2e/...`` would pass a check of the text and fetch another file. Here a URL is

1. refused outright when its text holds anything a server might read differently from us:
   characters outside visible ASCII (controls, spaces, non-ASCII), a backslash, userinfo
   (``user@``), a fragment, a malformed percent escape, a path segment that is ``.`` or
   ``..`` once percent-decoded (however often: ``%252e%252e`` too, and ``..;x`` as Tomcat
   reads it), or an encoded ``/`` or ``\\`` in the path; a query only where one is allowed;
2. prepared exactly as ``requests`` will send it (:func:`canonical`) and required to be a
   fixed point of that preparation, so what is checked is what goes on the wire;
3. matched against allow-listed prefixes by scheme, host, port and whole path segments
   (:class:`AllowList`), and fetched as that canonical string (:func:`prepared_get`).

Reasons in :class:`UrlRefused` are fixed texts: a URL from a request is never echoed.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urljoin

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
ANY_PORT = -1
MAX_URL_CHARS = 4096
_VISIBLE_ASCII = frozenset(chr(code) for code in range(0x21, 0x7F))
_HEX = frozenset(string.hexdigits)


class UrlRefused(ValueError):
    """Raised when a URL is not one the service may fetch; the reason never quotes it."""


@dataclass(frozen=True)
class Target:
    """A canonical URL taken apart for allow-list matching."""

    url: str
    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]


def canonical(url: object, *, query: bool = False) -> str:
    """The URL exactly as ``requests`` will send it, or UrlRefused saying why not.

    `query`: whether the URL may carry a query (searches and next links may; fhirServer,
    JWKS URLs and ``jku`` may not).
    """
    _check_text(url, query)
    assert isinstance(url, str)
    prepared = _prepare(url)
    if _prepare(prepared) != prepared:
        raise UrlRefused("the URL does not keep its form when prepared for sending")
    _check_text(prepared, query)
    return prepared


def target(url: str, *, query: bool = False) -> Target:
    """The canonical form of `url`, taken apart; UrlRefused when it is refused."""
    prepared = canonical(url, query=query)
    parsed = parse_url(prepared)
    scheme, host = parsed.scheme or "", parsed.host or ""
    port = parsed.port or DEFAULT_PORTS[scheme]
    segments = tuple(segment for segment in (parsed.path or "").split("/") if segment)
    return Target(prepared, scheme, host, port, segments)


def is_under(url: Target, prefix: Target) -> bool:
    """True when `url` has `prefix`'s scheme, host and port, and its path starts with the
    prefix's whole segments (``/fhir`` covers ``/fhir/R4``, never ``/fhirish``)."""
    return (
        (url.scheme, url.host) == (prefix.scheme, prefix.host)
        and prefix.port in (url.port, ANY_PORT)
        and url.segments[: len(prefix.segments)] == prefix.segments
    )


@dataclass(frozen=True)
class AllowList:
    """URL prefixes, canonical: a prefix without a port means the scheme's default port,
    ``:*`` (``http://127.0.0.1:*``) any port."""

    prefixes: tuple[Target, ...] = ()

    @classmethod
    def of(cls, prefixes: Iterable[str]) -> AllowList:
        """Prefixes from configuration; UrlRefused (naming nothing) for one that is refused."""
        return cls(tuple(prefix_target(prefix) for prefix in prefixes))

    def check(self, url: str, *, query: bool = False) -> str:
        """The canonical URL when it falls under an allow-listed prefix; else UrlRefused."""
        found = target(url, query=query)
        if not any(is_under(found, prefix) for prefix in self.prefixes):
            raise UrlRefused("the URL is not under an allow-listed prefix")
        return found.url

    def allows(self, url: str, *, query: bool = False) -> bool:
        try:
            self.check(url, query=query)
        except UrlRefused:
            return False
        return True


def prefix_target(prefix: str) -> Target:
    """A configured prefix as a Target (no query; ``:*`` for any port)."""
    scheme, sep, rest = prefix.partition("://")
    authority, slash, path = rest.partition("/")
    if not authority.endswith(":*"):
        return target(prefix)
    found = target(f"{scheme}{sep}{authority[:-2]}{slash}{path}")
    return Target(found.url, found.scheme, found.host, ANY_PORT, found.segments)


def join(current: str, link: object) -> str:
    """The canonical URL a link (a search ``next`` link, absolute or relative) names from
    the page at `current`; UrlRefused when the link itself, as written, breaks the rules
    (``urljoin`` would remove a relative link's dot segments before any check could see
    them)."""
    if not isinstance(link, str) or not link:
        raise UrlRefused("the link is not a string")
    if "://" in link.split("?", 1)[0]:
        return canonical(link, query=True)
    if not set(link) <= _VISIBLE_ASCII or "\\" in link or "#" in link:
        raise UrlRefused("the link holds characters a URL may not")
    if link.startswith("//"):
        raise UrlRefused("the link names another host")
    _check_escapes(link)
    path = link.split("?", 1)[0]
    _check_path(path.removeprefix("/"))
    return canonical(urljoin(current, link), query=True)


def prepared_get(
    session: requests.Session, url: str, headers: dict[str, str] | None = None, **send: object
) -> requests.Response:
    """GET exactly `url` (canonical): the prepared request must carry it unchanged."""
    prepared = session.prepare_request(requests.Request("GET", url, headers=headers))
    if prepared.url != url:
        raise UrlRefused("the URL would change on the way out")
    return session.send(prepared, **send)  # type: ignore[arg-type]


def _prepare(url: str) -> str:
    request = requests.PreparedRequest()
    try:
        request.prepare_url(url, None)
    except (requests.RequestException, LocationParseError, ValueError, UnicodeError):
        raise UrlRefused("the URL cannot be parsed") from None
    if not request.url:
        raise UrlRefused("the URL cannot be parsed")
    return request.url


def _check_text(url: object, query: bool) -> None:
    """The refusals made on the text itself (see the module docstring, step 1)."""
    if not isinstance(url, str) or not url:
        raise UrlRefused("the URL is not a string")
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused("the URL is too long")
    if not set(url) <= _VISIBLE_ASCII:
        raise UrlRefused("the URL holds spaces, control or non-ASCII characters")
    if "\\" in url:
        raise UrlRefused("the URL holds a backslash")
    if "#" in url:
        raise UrlRefused("the URL holds a fragment")
    if "?" in url and not query:
        raise UrlRefused("the URL holds a query")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        raise UrlRefused("the URL is not an absolute http(s) URL")
    authority, slash, path = rest.partition("/")
    authority = authority.split("?", 1)[0]
    if not authority or "@" in authority or "%" in authority:
        raise UrlRefused("the URL has no host, or holds credentials or escapes before it")
    _check_escapes(url)
    if slash:
        _check_path(path.split("?", 1)[0])


def _check_escapes(url: str) -> None:
    index = url.find("%")
    while index >= 0:
        if len(url) < index + 3 or not set(url[index + 1 : index + 3]) <= _HEX:
            raise UrlRefused("the URL holds a malformed percent escape")
        index = url.find("%", index + 1)


def _check_path(path: str) -> None:
    segments = path.split("/")
    if "" in segments[:-1]:
        raise UrlRefused("the URL path holds an empty segment")
    for segment in segments:
        _check_segment(segment)


def _check_segment(segment: str) -> None:
    """No dot segment, no encoded slash, backslash or control character, at any depth of
    decoding (``%252e`` is ``%2e`` once decoded, ``.`` twice)."""
    for _ in range(4):
        if segment.split(";", 1)[0] in (".", ".."):
            raise UrlRefused("the URL path holds a dot segment")
        decoded = unquote(segment)
        if "/" in decoded or "\\" in decoded:
            raise UrlRefused("the URL path holds an encoded slash or backslash")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
            raise UrlRefused("the URL path holds an encoded control character")
        if decoded == segment:
            return
        segment = decoded
    raise UrlRefused("the URL path is encoded too many times over")
