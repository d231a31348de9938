"""The use case behind every hook call: validate the envelope, read the data, run the rules.

Used by the HTTP layer and, through it, by ``rls-cds evaluate``; knows nothing of Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from cds_service.auth.model import Client, PatientScope
from cds_service.cards import CardRenderer
from cds_service.clinical.budget import Budget, CpuClock, call_cpu_time
from cds_service.clinical.engine import Engine, OrderHook
from cds_service.clinical.findings import Decision, Finding
from cds_service.clinical.medications import read_drafts
from cds_service.clinical.picture import PatientPicture, build_picture
from cds_service.clinical.reader import ReadReport, unresolved_medication_ids
from cds_service.errors import PrefetchUnavailable, RequestInvalid, UnknownService
from cds_service.explain import BUDGET_SPENT, NOT_PREFETCHED, explain, fetch_cause
from cds_service.fhir.bulkhead import Bulkheads
from cds_service.fhir.client import MAX_ANSWER_BYTES, ByteBudget, FhirClient
from cds_service.fhir.errors import FhirError
from cds_service.fhir.gather import UNBOUNDED, Gathered, gather
from cds_service.hooks.prefetch import TemplateError, render, unsatisfied
from cds_service.hooks.services import OPTIONAL_KEYS, ServiceDefinition
from cds_service.hooks.wire import CONTEXT_MODELS, HookRequest, OrderSelectContext
from cds_service.knowledge import Knowledge
from cds_service.outbound import AllowList

Clock = Callable[[], datetime]
#: (patient, topics, now) -> the topics clinicians overrode for this patient recently.
Suppressor = Callable[[PatientScope, Iterable[str], datetime], set[str]]
#: The caller of the CLI's in-process calls (no authentication there).
LOCAL_CLIENT = Client(issuer="local")

#: Synthetic prefetch key for Medications read because requests referenced them.
REFERENCED_MEDICATIONS = "_referencedMedications"
#: Where draft orders are looked at beside the prefetch, for the Medications they reference.
DRAFT_ORDERS = "_draftOrders"
MEDICATION_BATCH = 50


@dataclass(frozen=True)
class Outcome:
    """A hook's response body and what the log line needs to know about it."""

    response: dict[str, Any]
    hook_instance: str
    report: ReadReport = field(default_factory=ReadReport)
    gathered: Gathered = field(default_factory=Gathered)
    patient: PatientScope | None = None
    answered_at: datetime | None = None
    suppressed: frozenset[str] = frozenset()
    """Topics not shown because a clinician overrode them for this patient (feedback)."""
    decisions: tuple[Decision, ...] = ()
    """Each topic of the hook: fired, or the first reason why not (cds_service.explain)."""

    @property
    def topics(self) -> list[str]:
        return [card["source"]["topic"]["code"] for card in self.response["cards"]]


@dataclass(frozen=True)
class FhirAccess:
    """How this deployment reaches EHR FHIR servers: client, worker pool, limits.

    `bulkheads`: the shares of the pool one server and one client may hold (None: no
    bound); `hook_bytes`: the answer bytes one hook may read across all its fetches."""

    client: FhirClient
    executor: Executor
    allowlist: AllowList
    deadline_s: float
    bulkheads: Bulkheads | None = None
    hook_bytes: int = 2 * MAX_ANSWER_BYTES

    def slots(self) -> Bulkheads:
        """The bulkheads, or unbounded ones when the deployment set none."""
        return self.bulkheads or Bulkheads(UNBOUNDED, self.client.ticker)


@dataclass(frozen=True)
class DomainBudget:
    """The CPU seconds (of `clock`) each call may spend reading its patient's data."""

    seconds: float
    clock: CpuClock = call_cpu_time

    def start(self) -> Budget:
        return Budget(self.seconds, self.clock)


class Evaluator:
    """Answers hook calls for the configured services."""

    def __init__(
        self,
        knowledge: Knowledge,
        services: Mapping[str, ServiceDefinition],
        clock: Clock,
        fhir: FhirAccess,
        suppressor: Suppressor | None = None,
        budget: DomainBudget = DomainBudget(0.5),
    ):
        self._services = services
        self._suppressor = suppressor
        self._budget = budget
        self._clock = clock
        self._fhir = fhir
        self._value_sets = knowledge.value_sets
        self._engine = Engine(
            knowledge.thresholds,
            knowledge.dosing,
            knowledge.iron_catalogue,
            knowledge.indications,
        )
        self._renderer = CardRenderer(knowledge)

    def now(self) -> datetime:
        """The evaluation clock (feedback is stamped with it too)."""
        return self._clock()

    @property
    def fetch_slots(self) -> Bulkheads:
        """The FHIR fetch bulkheads (what each server, client and the pool holds now)."""
        return self._fhir.slots()

    def service(self, service_id: str) -> ServiceDefinition:
        try:
            return self._services[service_id]
        except KeyError:
            raise UnknownService("no CDS service with that id") from None

    def evaluate(self, service_id: str, body: Any, client: Client = LOCAL_CLIENT) -> Outcome:
        """Validate `body` as a call of `service_id` by `client` and answer it.

        The client's `fhir_servers` are the FHIR server prefixes the service may contact
        for it: the moment a fetch is needed (a prefetch key left out, a Medication to
        read), a `fhirServer` outside them is refused with 400 before any connection. A
        call that needs no fetch is answered whatever `fhirServer` it names: nothing is
        contacted and its token is never used (the CDS Hooks Sandbox always names one).
        None (demo mode, the CLI) means the deployment's allow-list alone.
        """
        deadline = self._fhir.client.ticker.now() + self._fhir.deadline_s
        service = self.service(service_id)
        request, context = parse_request(service, body)
        server = request.fhirServer
        prefetch, gathered = self._complete(service, request, deadline, client)
        unread = {*gathered.failed, *unsatisfied(service.prefetch, prefetch)}
        unavailable = frozenset(
            kind for key in unread if key in service.prefetch and (kind := service.kind(key))
        )
        now = self._clock()
        patient = PatientScope(client.issuer, client.tenant, server, context.patientId)
        picture = build_picture(
            prefetch, context.patientId, now, self._value_sets, unavailable, self._budget.start()
        )
        suppressed: frozenset[str] = frozenset()
        if service.hook == "patient-view":
            findings, decided = self._engine.decide_patient_view(picture)
            if findings and self._suppressor is not None:
                suppressed = frozenset(self._suppressor(patient, {f.topic for f in findings}, now))
                findings = [f for f in findings if f.topic not in suppressed]
        else:
            hook: OrderHook = "order-select" if service.hook == "order-select" else "order-sign"
            findings, decided = self._order_findings(hook, request, context, prefetch, picture)
        cards = self._renderer.render(findings, context.patientId, now)
        causes = {
            kind: fetch_cause(gathered.failed[key]) if key in gathered.failed else NOT_PREFETCHED
            for key in sorted(unread)
            if (kind := service.kind(key)) and key in service.prefetch
        }
        causes |= {kind: BUDGET_SPENT for kind in picture.unavailable - set(causes)}
        decisions = explain(decided.values(), suppressed, causes)
        return Outcome(
            {"cards": cards},
            str(request.hookInstance),
            picture.report,
            gathered,
            patient,
            now,
            suppressed,
            decisions,
        )

    def _order_findings(
        self,
        hook: OrderHook,
        request: HookRequest,
        context: Any,
        prefetch: dict[str, Any],
        picture: PatientPicture,
    ) -> tuple[list[Finding], dict[str, Decision]]:
        """Findings about the draft orders (all of them at order-sign, the selected ones at
        order-select: the others are context only) and each order topic's decision."""
        drafts = read_drafts(
            request.context["draftOrders"],
            prefetch,
            context.patientId,
            self._value_sets,
            picture.report,
        )
        if isinstance(context, OrderSelectContext):
            selected, _ = context.selected()
            drafts = tuple(d for d in drafts if d.source in selected)
        return self._engine.decide_order_view(picture, drafts, hook)

    def _complete(
        self,
        service: ServiceDefinition,
        request: HookRequest,
        deadline: float,
        client: Client,
    ) -> tuple[dict[str, Any], Gathered]:
        """The prefetch with every unsatisfied key fetched from the FHIR server (spec 14),
        and the Medications its requests reference; the client's FHIR servers bound where,
        its issuer names its bulkhead."""
        bound = client.fhir_servers
        budget = ByteBudget(self._fhir.hook_bytes)
        prefetch = dict(request.prefetch or {})
        missing = unsatisfied(service.prefetch, prefetch)
        gathered = Gathered()
        server = request.fhirServer
        fetchable = (
            server is not None
            and self._may_fetch(server)
            and (bound is None or bound.allows(server))
        )
        if not set(missing) - OPTIONAL_KEYS and not fetchable:
            # Nowhere we may fetch the optional keys from (an EHR such as the CDS Hooks
            # Sandbox leaves out keys its server did not answer, and names a server this
            # client may not have contacted): rules do without them.
            missing = []
        if missing:
            base = self._named_server(request, missing)
            urls: dict[str, str] = {}
            no_data: dict[str, None] = {}
            for key in missing:
                try:
                    urls[key] = render(service.prefetch[key], request.context)
                except TemplateError:  # e.g. an encounter query without an encounterId
                    no_data[key] = None
            if urls:
                self._check_fetch_allowed(base, bound)
                gathered = gather(
                    self._fhir.client,
                    self._fhir.executor,
                    base,
                    _token(request),
                    urls,
                    deadline,
                    bulkheads=self._fhir.slots(),
                    issuer=client.issuer,
                    budget=budget,
                )
            if gathered.fatal:
                raise PrefetchUnavailable(
                    "prefetch data is missing and the FHIR server cannot provide it",
                    [{"prefetch": key, "reason": str(e)} for key, e in gathered.fatal.items()],
                    gathered,
                )
            prefetch |= no_data | gathered.values
        if server:
            drafts = request.context.get("draftOrders")
            medication_ids = unresolved_medication_ids({**prefetch, DRAFT_ORDERS: drafts})
            if medication_ids:
                _check_bound(server, bound)
                # off the deployment's allow-list (demo mode, the CLI) there is nowhere to
                # look them up: the rules do without them
                if self._may_fetch(server):
                    prefetch[REFERENCED_MEDICATIONS] = self._medications(
                        server, _token(request), medication_ids, deadline, gathered, client, budget
                    )
        return prefetch, gathered

    def _named_server(self, request: HookRequest, missing: list[str]) -> str:
        """The request's fhirServer, or 412 naming the required keys nobody can fetch."""
        if request.fhirServer is None:
            raise PrefetchUnavailable(
                "prefetch data is missing and the request names no fhirServer to fetch it from",
                [
                    {"prefetch": key, "reason": "no fhirServer"}
                    for key in missing
                    if key not in OPTIONAL_KEYS
                ],
            )
        return request.fhirServer

    def _check_fetch_allowed(self, server: str, bound: AllowList | None) -> None:
        """400 before any connection unless the client and the deployment allow `server`."""
        _check_bound(server, bound)
        if not self._may_fetch(server):
            raise RequestInvalid(
                "fhirServer is not on this service's allow-list",
                [{"loc": "fhirServer", "msg": "not an allowed FHIR server"}],
            )

    def _may_fetch(self, url: str) -> bool:
        return self._fhir.allowlist.allows(url)

    def _medications(
        self,
        base: str,
        token: str | None,
        ids: list[str],
        deadline: float,
        gathered: Gathered,
        client: Client,
        budget: ByteBudget,
    ) -> dict[str, Any] | None:
        """Medications that requests reference but the prefetch lacks, read in one search
        (in the hook's thread: a slot of the server and client, none of the pool)."""
        query = "Medication?_id=" + ",".join(quote(i, safe="") for i in ids[:MEDICATION_BATCH])
        fhir = self._fhir.client
        try:
            with self._fhir.slots().slot(base, client.issuer, deadline, pooled=False):
                return fhir.get(base, query, token, deadline, gathered.requests, budget).value
        except FhirError as error:  # unresolved medications are skipped and counted
            gathered.failed[REFERENCED_MEDICATIONS] = error
            return None


def _check_bound(server: str, bound: AllowList | None) -> None:
    """400 unless the calling client may have `server` contacted (`bound`: its FHIR servers;
    None: no client binding). Checked only when a fetch is about to be made."""
    if bound is not None and not bound.allows(server):
        raise RequestInvalid(
            "fhirServer is not one of the FHIR servers this client may name",
            [{"loc": "fhirServer", "msg": "not a FHIR server of the calling client"}],
        )


def _token(request: HookRequest) -> str | None:
    authorization = request.fhirAuthorization
    return authorization.access_token.get_secret_value() if authorization else None


def parse_request(service: ServiceDefinition, body: Any) -> tuple[HookRequest, Any]:
    """The request and its hook-specific context, or RequestInvalid naming every problem."""
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    request = _validate(HookRequest, body, ())
    if request.hook != service.hook:
        raise RequestInvalid(
            f"this service answers hook {service.hook!r}, not the hook sent",
            [{"loc": "hook", "msg": f"expected {service.hook!r}"}],
        )
    context = _validate(CONTEXT_MODELS[service.hook], request.context, ("context",))
    if isinstance(context, OrderSelectContext) and (unmatched := context.selected()[1]):
        raise RequestInvalid(
            "context.selections names orders that are not in context.draftOrders",
            [
                {"loc": f"context.selections.{i}", "msg": "not an order in context.draftOrders"}
                for i in unmatched
            ],
        )
    return request, context


def _validate(model: type[BaseModel], data: Any, prefix: tuple[str, ...]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [
            {"loc": ".".join(str(part) for part in (*prefix, *error["loc"])), "msg": error["msg"]}
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise RequestInvalid("the request does not follow CDS Hooks 2.0", details) from None
