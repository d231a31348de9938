"""A small FHIR REST client over one pooled requests.Session: reads and paged searches.

Every request carries the EHR's bearer token (when it lent one) and a timeout cut to the
hook's remaining time; a watchdog (cds_service.fhir.watchdog) cuts each whole exchange,
headers included, at the hook's deadline. Memory is bounded per answer
(``max_answer_bytes``), per hook across its fetches (ByteBudget) and in entries per search
(``max_entries``, the rest skipped and reported as a search cut short); an answer whose
deadline passed while it arrived is not parsed. Every URL goes through the service's URL
discipline (cds_service.outbound) and is fetched exactly as checked; ``next`` links are
followed up to a bound and only under the FHIR server path the request named. The session keeps no
cookies: nothing one server sets can reach another tenant's path on the same host.
"""

from __future__ import annotations

import http.cookiejar
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from cds_service import metrics
from cds_service.fhir.clock import SYSTEM, Ticker
from cds_service.fhir.errors import (
    FhirError,
    FhirMalformed,
    FhirRefused,
    FhirUnavailable,
    FhirUnreachable,
    FhirUrlRefused,
    translating,
)
from cds_service.fhir.watchdog import Watch, Watchdog, WatchedAdapter
from cds_service.outbound import (
    AllowList,
    Target,
    UrlRefused,
    is_under,
    join,
    prepared_get,
    target,
)

FHIR_JSON = "application/fhir+json"
#: The most one answer may hold by default: a searchset page of 100 resources is far
#: smaller, and a worker (two per 512 Mi pod) parses a few of them at once.
MAX_ANSWER_BYTES = 2 * 1024 * 1024
#: The most entries one search keeps by default (all its pages together).
MAX_ENTRIES = 2000
CHUNK_BYTES = 64 * 1024
#: Least time left for a retry after a 429 to be worth making.
MIN_ATTEMPT_S = 0.2
#: The metrics' outcome label of each failure.
_OUTCOMES: dict[type[FhirError], str] = {
    FhirRefused: "refused",
    FhirUnreachable: "unreachable",
    FhirUnavailable: "unavailable",
    FhirMalformed: "malformed",
    FhirUrlRefused: "url-refused",
}


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
    """True when paging stopped early (page bound, a loop, or a next link we may not follow)
    or entries beyond the bound were skipped."""
    skipped: int = 0
    """Entries read but skipped: beyond the most one search keeps."""


class ByteBudget:
    """The bytes one hook may read across all its fetches (shared by its pool threads)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def charge(self, size: int) -> None:
        """Count `size` bytes read; FhirUnavailable once the hook's budget is spent."""
        with self._lock:
            self.used += size
            if self.used > self.limit:
                raise FhirUnavailable("the hook's budget of FHIR answer bytes is spent")


def new_session(pool_size: int) -> requests.Session:
    """A session with a connection pool large enough for the parallel fetches."""
    session = requests.Session()
    adapter = WatchedAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Accept"] = FHIR_JSON
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


class FhirClient:
    """Reads and searches one FHIR server on behalf of one hook call."""

    def __init__(
        self,
        session: requests.Session,
        connect_timeout: float,
        max_pages: int,
        allowed: AllowList,
        *,
        ticker: Ticker = SYSTEM,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        max_entries: int = MAX_ENTRIES,
    ):
        self._session = session
        self._connect_timeout = connect_timeout
        self._max_pages = max_pages
        self._allowed = allowed
        self._max_answer_bytes = max_answer_bytes
        self._max_entries = max_entries
        self.ticker = ticker
        self._watchdog = Watchdog(ticker)

    def get(
        self,
        base: str,
        relative: str,
        token: str | None,
        deadline: float,
        log: list[RequestLog],
        budget: ByteBudget | None = None,
    ) -> Fetched:
        """GET `relative` (a rendered template) under `base`, following search pages.

        `base` is the request's fhirServer; every URL fetched, the first and each page, must
        fall under its path (the token it lent must never reach another server or tenant)
        and under the deployment's allow-list. Each HTTP exchange is appended to `log`,
        whether or not the fetch succeeds; the bytes read are charged to `budget` (the
        hook's, across its fetches). Entries beyond ``max_entries`` are skipped (counted in
        ``skipped``, the search marked truncated).
        """
        try:
            root = target(base)
            url = self._on_server(f"{base.rstrip('/')}/{relative.lstrip('/')}", root)
        except UrlRefused as refused:
            raise FhirUrlRefused(str(refused)) from None
        fetched = Fetched(value=None)
        budget = budget or ByteBudget(self._max_answer_bytes * self._max_pages)
        body = self._get_json(url, token, deadline, log, budget, read="?" not in relative)
        if body is None or body.get("resourceType") != "Bundle":
            fetched.value = body
            return fetched
        entries = list(body.get("entry") or [])
        seen = {url}
        link = _next_link(body)
        while link is not None and len(entries) < self._max_entries:
            try:
                next_url = self._on_server(join(url, link), root)
            except UrlRefused:
                next_url = None
            if next_url is None or len(seen) >= self._max_pages or next_url in seen:
                fetched.truncated = True
                break
            seen.add(next_url)
            page = self._get_json(next_url, token, deadline, log, budget, read=False)
            if page is None or page.get("resourceType") != "Bundle":
                raise FhirMalformed("a search page is not a Bundle")
            entries += page.get("entry") or []
            url, link = next_url, _next_link(page)
        if len(entries) > self._max_entries:
            fetched.skipped = len(entries) - self._max_entries
            fetched.truncated = True
            del entries[self._max_entries :]
        elif link is not None and not fetched.truncated:
            fetched.truncated = True  # the entry bound was reached with pages left
        merged = {k: v for k, v in body.items() if k not in ("entry", "link")}
        if entries:
            merged["entry"] = entries
        fetched.value = merged
        return fetched

    def _on_server(self, url: str, root: Target) -> str:
        """The canonical `url` when it is under the request's server and the allow-list."""
        found = target(url, query=True)
        if not is_under(found, root):
            raise UrlRefused("the URL is not under the request's FHIR server")
        return self._allowed.check(found.url, query=True)

    def _get_json(
        self,
        url: str,
        token: str | None,
        deadline: float,
        log: list[RequestLog],
        budget: ByteBudget,
        read: bool,
    ) -> dict[str, Any] | None:
        """_answer under the watchdog, counted in the metrics by outcome and timed (no URL or
        token in them). Whatever failed once the watchdog cut the exchange is the deadline
        passing (the cut looks like a dropped connection), never an unreachable server."""
        started = time.monotonic()
        outcome = "ok"
        try:
            with self._watchdog.watching(deadline) as watch:
                answer = self._watched(url, token, deadline, log, budget, read, watch)
            if answer is None:
                outcome = "not-found"
            return answer
        except FhirError as error:
            outcome = _OUTCOMES.get(type(error), "unavailable")
            raise
        finally:
            metrics.FHIR_QUERIES.labels(outcome).inc()
            metrics.FHIR_LATENCY.observe(time.monotonic() - started)

    def _watched(
        self,
        url: str,
        token: str | None,
        deadline: float,
        log: list[RequestLog],
        budget: ByteBudget,
        read: bool,
        watch: Watch,
    ) -> dict[str, Any] | None:
        try:
            return self._answer(url, token, deadline, log, budget, read)
        except FhirError:
            if watch.expired:
                raise FhirUnavailable("the hook's deadline passed during the exchange") from None
            raise

    def _answer(
        self,
        url: str,
        token: str | None,
        deadline: float,
        log: list[RequestLog],
        budget: ByteBudget,
        read: bool,
    ) -> dict[str, Any] | None:
        """One GET, answered as JSON within the deadline; a 429 whose Retry-After fits in the
        time left is tried once more."""
        status, body = self._exchange(url, token, deadline, log)
        if status == 429:
            wait = _retry_after(body.headers) if body is not None else None
            if wait is not None and self.ticker.now() + wait < deadline - MIN_ATTEMPT_S:
                self.ticker.wait(threading.Event(), self.ticker.now() + wait)
                status, body = self._exchange(url, token, deadline, log)
        if status in (401, 403):
            raise FhirRefused(f"HTTP {status}")
        if status == 404 and read:
            return None
        if status != 200 or body is None:
            raise FhirUnavailable(f"HTTP {status}")
        content = self._read_body(body, deadline, budget)
        if self.ticker.now() > deadline:
            raise FhirUnavailable("the hook's deadline passed before the answer was parsed")
        try:
            parsed = json.loads(content)
        except ValueError:
            raise FhirMalformed("the answer is not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("resourceType"), str):
            raise FhirMalformed("the answer is not a FHIR resource")
        return parsed

    def _exchange(
        self, url: str, token: str | None, deadline: float, log: list[RequestLog]
    ) -> tuple[int | None, requests.Response | None]:
        remaining = deadline - self.ticker.now()
        if remaining <= 0:
            raise FhirUnavailable("the hook's deadline passed")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        started = time.monotonic()
        status: int | None = None
        try:
            with translating(), _refusing_changed_urls():
                response = prepared_get(
                    self._session,
                    url,
                    headers,
                    timeout=(min(self._connect_timeout, remaining), remaining),
                    allow_redirects=False,
                    stream=True,
                )
            status = response.status_code
        finally:
            log.append(RequestLog(url, status, time.monotonic() - started))
        if status != 200:
            response.close()  # the body of a refusal is not read: free the connection
        return status, response

    def _read_body(self, response: requests.Response, deadline: float, budget: ByteBudget) -> bytes:
        """The body, read against the hook's deadline and the size bounds.

        The socket timeout applies to each read, so a server that drips a byte at a time
        could otherwise hold a worker for ever; here the whole body must arrive before the
        deadline (the watchdog also cuts a read blocked past it).
        """
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := _read_some(response):
                size += len(chunk)
                if size > self._max_answer_bytes:
                    raise FhirMalformed("the answer is larger than the service reads")
                budget.charge(len(chunk))
                if self.ticker.now() > deadline:
                    raise FhirUnavailable("the hook's deadline passed while reading the answer")
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            # the server answered, then failed or stalled mid-body
            raise FhirUnavailable(f"the answer was cut short ({type(exc).__name__})") from exc
        finally:
            response.close()
        return b"".join(chunks)


@contextmanager
def _refusing_changed_urls() -> Iterator[None]:
    try:
        yield
    except UrlRefused as refused:
        raise FhirUrlRefused(str(refused)) from None


def _read_some(response: requests.Response) -> bytes:
    """What has arrived of the body, up to CHUNK_BYTES, without waiting to fill the chunk
    (``read1``): a body arriving a byte at a time still returns control at every byte."""
    return response.raw.read1(CHUNK_BYTES, decode_content=True)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a Retry-After header in seconds (HTTP dates are not waited for)."""
    value = headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _next_link(bundle: dict[str, Any]) -> str | None:
    """The raw ``next`` link of a searchset page, as the server wrote it."""
    links = bundle.get("link")
    for link in links if isinstance(links, list) else []:
        if isinstance(link, dict) and link.get("relation") == "next" and link.get("url"):
            return str(link["url"])
    return None
