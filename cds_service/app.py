"""create_app(settings): the Flask application factory. There is no module-level app.

Under gunicorn: ``gunicorn 'cds_service.app:create_app()'`` (settings from the environment).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_cors import CORS

from cds_service import errors
from cds_service.api import (
    EXTENSION,
    Runtime,
    demo,
    demo_feedback,
    discovery,
    headers,
    health,
    hooks,
    openapi,
)
from cds_service.api import feedback as feedback_api
from cds_service.auth import build_security
from cds_service.clinical.budget import CpuClock, call_cpu_time
from cds_service.evaluation import Clock, DomainBudget, Evaluator, FhirAccess
from cds_service.feedback import build_feedback
from cds_service.fhir.bulkhead import Bulkheads, Shares
from cds_service.fhir.client import FhirClient, new_session
from cds_service.fhir.clock import SYSTEM, Ticker
from cds_service.hooks.services import build_services
from cds_service.knowledge import Knowledge
from cds_service.logs import configure as configure_logging
from cds_service.outbound import AllowList
from cds_service.resources import shipped_dir
from cds_service.settings import Settings
from cds_service.store import make_engine

log = logging.getLogger(__name__)


class _InOrderJSON(DefaultJSONProvider):
    """Keeps keys in the order we build them (cards read as the spec lists their fields)."""

    sort_keys = False


def _fhir_access(
    settings: Settings,
    client_servers: tuple[str, ...],
    ticker: Ticker = SYSTEM,
    queries_per_hook: int = 1,
) -> FhirAccess:
    """One pooled session and one worker pool per app, shared by every hook call.

    The service may connect to the configured allow-list and to the FHIR servers of the
    trusted clients; which of these one call may name is bound to its verified client. One
    server holds at most half the pool, so a slow one always leaves room for the others.
    A share smaller than one hook's queries (`queries_per_hook`) makes every hook fetch in
    rounds, each as slow as the server: allowed, but said at start-up.
    """
    allowlist = AllowList.of(dict.fromkeys(settings.effective_fhir_allowlist + client_servers))
    client = FhirClient(
        new_session(settings.fhir_max_parallel),
        connect_timeout=settings.fhir_connect_timeout_s,
        max_pages=settings.fhir_max_pages,
        allowed=allowlist,
        ticker=ticker,
        max_answer_bytes=settings.fhir_answer_bytes,
        max_entries=settings.fhir_max_entries,
    )
    executor = ThreadPoolExecutor(settings.fhir_max_parallel, thread_name_prefix="fhir")
    shares = Shares(
        server=min(settings.fhir_server_share, max(1, settings.fhir_max_parallel // 2)),
        client=min(settings.fhir_client_share, settings.fhir_max_parallel),
        pool=settings.fhir_max_parallel,
    )
    if shares.server < queries_per_hook:
        log.warning(
            "one FHIR server may hold %d fetches at once, fewer than one hook's %d queries: "
            "hooks that fetch everything will fetch in rounds (raise RLS_CDS_FHIR_MAX_PARALLEL "
            "to at least %d and RLS_CDS_FHIR_SERVER_SHARE to at least %d)",
            shares.server,
            queries_per_hook,
            2 * queries_per_hook,
            queries_per_hook,
        )
    return FhirAccess(
        client,
        executor,
        allowlist,
        settings.hook_deadline_s,
        Bulkheads(shares, ticker),
        settings.fhir_hook_bytes,
    )


def _cors(app: Flask, settings: Settings) -> None:
    """CORS for browser-based EHRs: only the allow-listed origins get CORS headers."""
    if not settings.cors_origins:
        return
    CORS(
        app,
        origins=list(settings.cors_origins),
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type"],
        expose_headers=["WWW-Authenticate", "Retry-After"],
        supports_credentials=False,
        # An allow-listed web page (the CDS Hooks Sandbox) may call a service on a private
        # network address, e.g. 127.0.0.1 in a trial (Chrome's Private Network Access).
        allow_private_network=True,
        max_age=600,
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings | None = None,
    clock: Clock = _utc_now,
    cpu_clock: CpuClock = call_cpu_time,
    fhir_ticker: Ticker = SYSTEM,
) -> Flask:
    """Build the app: load and check the knowledge base, wire the adapters, register routes.

    `clock` is the evaluation time; `cpu_clock` measures each call's CPU budget;
    `fhir_ticker` times FHIR deadlines, the exchange watchdog and bulkhead waits (tests
    inject all three).

    Raises TrustedClientsInvalid when the trusted-clients file cannot be used, and
    ConfigurationInvalid when the settings cannot make a safe service.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)
    knowledge = Knowledge.load(settings.cards_dir or shipped_dir("cards"))
    services = build_services(knowledge.value_sets)
    security = build_security(settings)
    database = make_engine(settings)
    feedback = build_feedback(settings, database)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json = _InOrderJSON(app)
    app.extensions[EXTENSION] = Runtime(
        settings=settings,
        knowledge=knowledge,
        services=services,
        evaluator=Evaluator(
            knowledge,
            services,
            clock,
            _fhir_access(
                settings,
                security.clients.fhir_servers,
                fhir_ticker,
                max(len(service.prefetch) for service in services.values()),
            ),
            feedback.suppressed,
            DomainBudget(settings.domain_cpu_budget_s, cpu_clock),
        ),
        authenticator=security.authenticator,
        database=database,
        replay=security.replay,
        feedback=feedback,
    )
    _cors(app, settings)
    for module in (discovery, hooks, feedback_api, health, openapi, demo):
        app.register_blueprint(module.bp)
    if settings.demo:  # the demo page's reset: absent otherwise (404 to any method)
        app.register_blueprint(demo_feedback.bp)
    errors.register(app)
    headers.register(app)
    log.info(
        "service ready",
        extra={"services": list(services), "topics": list(knowledge.cards), "demo": settings.demo},
    )
    return app
