"""A small FHIR REST client over one pooled requests.Session: reads and paged searches.

Every request carries the EHR's bearer token (when it lent one) and a timeout cut to the
hook's remaining time; ``next`` links are followed up to a bound and only to allowed URLs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import requests

from cds_service.fhir.errors import (
    FhirMalformed,
    FhirRefused,
    FhirUnavailable,
    translating,
)
from cds_service.fhir.guard import is_allowed

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class RequestLog:
    """One HTTP exchange, for operators' reports (never written to the service log)."""

    url: str
    status: int | None
    seconds: float


@dataclass
class Fetched:
    """What one template fetched: a resource, a merged searchset, or None (404 on a read)."""

    value: dict[str, Any] | None
    truncated: bool = False
    """True when paging stopped early (page bound, a loop, or a next link we may not follow)."""


def new_session(pool_size: int) -> requests.Session:
    """A session with a connection pool large enough for the parallel fetches."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = FHIR_JSON
    return session


class FhirClient:
    """Reads and searches one FHIR server on behalf of one hook call."""

    def __init__(
        self,
        session: requests.Session,
        connect_timeout: float,
        max_pages: int,
        allowed: Callable[[str], bool],
    ):
        self._session = session
        self._connect_timeout = connect_timeout
        self._max_pages = max_pages
        self._allowed = allowed

    def get(
        self, base: str, relative: str, token: str | None, deadline: float, log: list[RequestLog]
    ) -> Fetched:
        """GET `relative` (a rendered template) under `base`, following search pages.

        Each HTTP exchange is appended to `log`, whether or not the fetch succeeds.
        """
        url = f"{base.rstrip('/')}/{relative.lstrip('/')}"
        fetched = Fetched(value=None)
        body = self._get_json(url, token, deadline, log, read="?" not in relative)
        if body is None or body.get("resourceType") != "Bundle":
            fetched.value = body
            return fetched
        entries = list(body.get("entry") or [])
        seen = {url}
        next_url = _next_link(body, url)
        while next_url:
            # A page link is followed only under the server the EHR named: the token it lent
            # must never reach another server, even one another client may name.
            on_server = is_allowed(next_url, (base,)) and self._allowed(next_url)
            if len(seen) >= self._max_pages or next_url in seen or not on_server:
                fetched.truncated = True
                break
            seen.add(next_url)
            page = self._get_json(next_url, token, deadline, log, read=False)
            if page is None or page.get("resourceType") != "Bundle":
                raise FhirMalformed("a search page is not a Bundle")
            entries += page.get("entry") or []
            next_url = _next_link(page, next_url)
        merged = {k: v for k, v in body.items() if k not in ("entry", "link")}
        if entries:
            merged["entry"] = entries
        fetched.value = merged
        return fetched

    def _get_json(
        self, url: str, token: str | None, deadline: float, log: list[RequestLog], read: bool
    ) -> dict[str, Any] | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FhirUnavailable("the hook's deadline passed")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.monotonic()
        status: int | None = None
        try:
            with translating():
                response = self._session.get(
                    url,
                    headers=headers,
                    timeout=(min(self._connect_timeout, remaining), remaining),
                    allow_redirects=False,
                )
            status = response.status_code
        finally:
            log.append(RequestLog(url, status, time.monotonic() - started))
        if status in (401, 403):
            raise FhirRefused(f"HTTP {status}")
        if status == 404 and read:
            return None
        if status != 200:
            raise FhirUnavailable(f"HTTP {status}")
        try:
            body = response.json()
        except ValueError:
            raise FhirMalformed("the answer is not JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise FhirMalformed("the answer is not a FHIR resource")
        return body


def _next_link(bundle: dict[str, Any], current: str) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return urljoin(current, str(link["url"]))
    return None
