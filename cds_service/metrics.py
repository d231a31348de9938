"""The service's Prometheus metrics: the metric objects, and GET /metrics's exposition.

Under gunicorn every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (the
gunicorn config sets and cleans it) and /metrics adds up the files of all workers, so any
worker answers for the whole instance. Without that variable (``rls-cds serve``, tests) the
process's own registry is exposed. Labels never carry patient data, tokens or URLs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
#: Hook answers take milliseconds from prefetch and up to the deadline (2.5 s) with queries.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HOOK_LATENCY = Histogram(
    "rls_cds_hook_duration_seconds",
    "Time to answer a hook call, by service and HTTP status.",
    ["service", "status"],
    buckets=LATENCY_BUCKETS,
)
CARDS_ISSUED = Counter(
    "rls_cds_cards_issued_total", "Cards returned to the EHR, by service and topic.",
    ["service", "topic"],
)  # fmt: skip
SKIPPED_RESOURCES = Counter(
    "rls_cds_skipped_resources_total",
    "FHIR resources that could not be read and were skipped, by type and reason.",
    ["resource_type", "reason"],
)
FHIR_QUERIES = Counter(
    "rls_cds_fhir_queries_total",
    "HTTP requests to EHR FHIR servers, by outcome (ok, not-found, refused, unavailable, "
    "unreachable, malformed).",
    ["outcome"],
)
FHIR_LATENCY = Histogram(
    "rls_cds_fhir_query_duration_seconds",
    "Time of one HTTP request to an EHR FHIR server (answered or not).",
    buckets=LATENCY_BUCKETS,
)
AUTH_FAILURES = Counter(
    "rls_cds_auth_failures_total", "Client JWTs refused (401), by reason.", ["reason"]
)
FEEDBACK_STORED = Counter(
    "rls_cds_feedback_stored_total", "Feedback items stored (each item once)."
)
FEEDBACK_REFUSED = Counter(
    "rls_cds_feedback_refused_total",
    "Feedback items refused, by reason (unknown-card, timestamp, quota).",
    ["reason"],
)
STORE_FAILURES = Counter(
    "rls_cds_store_failures_total",
    "Store operations that failed (the hook answered anyway), by operation.",
    ["operation"],
)


def observe_hook(
    service: str,
    status: int,
    seconds: float,
    topics: Iterable[str] = (),
    skipped: Mapping[str, int] | None = None,
) -> None:
    """Count one hook call: its latency, the cards it issued and the resources it skipped.

    `skipped` is the reader's count by ``"<ResourceType>:<reason>"``.
    """
    HOOK_LATENCY.labels(service, str(status)).observe(seconds)
    for topic in topics:
        CARDS_ISSUED.labels(service, topic).inc()
    for key, count in (skipped or {}).items():
        resource_type, _, reason = key.partition(":")
        SKIPPED_RESOURCES.labels(resource_type, reason).inc(count)


def exposition() -> tuple[bytes, str]:
    """The metrics page and its content type: all workers' values under gunicorn."""
    if os.environ.get(MULTIPROC_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
