"""The use case behind every hook call: validate the envelope, read the data, run the rules.

Used by the HTTP layer and, through it, by ``rls-cds evaluate``; knows nothing of Flask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from cds_service.cards import CardRenderer
from cds_service.clinical.engine import Engine
from cds_service.clinical.picture import build_picture
from cds_service.clinical.reader import ReadReport
from cds_service.errors import PrefetchUnavailable, RequestInvalid, UnknownService
from cds_service.hooks.services import ServiceDefinition
from cds_service.hooks.wire import CONTEXT_MODELS, HookRequest
from cds_service.knowledge import Knowledge

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Outcome:
    """A hook's response body and what the log line needs to know about it."""

    response: dict[str, Any]
    hook_instance: str
    report: ReadReport = field(default_factory=ReadReport)

    @property
    def topics(self) -> list[str]:
        return [card["source"]["topic"]["code"] for card in self.response["cards"]]


class Evaluator:
    """Answers hook calls for the configured services."""

    def __init__(
        self, knowledge: Knowledge, services: Mapping[str, ServiceDefinition], clock: Clock
    ):
        self._services = services
        self._clock = clock
        self._value_sets = knowledge.value_sets
        self._engine = Engine({topic: c.thresholds for topic, c in knowledge.cards.items()})
        self._renderer = CardRenderer(knowledge)

    def service(self, service_id: str) -> ServiceDefinition:
        try:
            return self._services[service_id]
        except KeyError:
            raise UnknownService(f"no CDS service with id {service_id!r}") from None

    def evaluate(self, service_id: str, body: Any) -> Outcome:
        """Validate `body` as a call of `service_id` and answer it."""
        service = self.service(service_id)
        request, context = parse_request(service, body)
        if service.hook != "patient-view":
            # The order hooks validate their calls; their rules come with the order-hooks issue.
            return Outcome({"cards": []}, str(request.hookInstance))
        prefetch = request.prefetch or {}
        missing = [key for key in service.prefetch if _unusable(prefetch, key)]
        if missing:
            raise PrefetchUnavailable(
                "prefetch data is missing and this service cannot query the FHIR server "
                "for it; send the prefetch keys named in details",
                [{"prefetch": key} for key in missing],
            )
        now = self._clock()
        picture = build_picture(prefetch, context.patientId, now, self._value_sets)
        findings = self._engine.patient_view(picture)
        cards = self._renderer.render(findings, context.patientId, now)
        return Outcome({"cards": cards}, str(request.hookInstance), picture.report)


def parse_request(service: ServiceDefinition, body: Any) -> tuple[HookRequest, Any]:
    """The request and its hook-specific context, or RequestInvalid naming every problem."""
    if not isinstance(body, dict):
        raise RequestInvalid("the request body must be a JSON object")
    request = _validate(HookRequest, body, ())
    if request.hook != service.hook:
        raise RequestInvalid(
            f"service {service.id!r} answers hook {service.hook!r}, not {request.hook!r}",
            [{"loc": "hook", "msg": f"expected {service.hook!r}"}],
        )
    context = _validate(CONTEXT_MODELS[service.hook], request.context, ("context",))
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


def _unusable(prefetch: Mapping[str, Any], key: str) -> bool:
    """Absent, or an OperationOutcome instead of data (spec); null means 'no data'."""
    if key not in prefetch:
        return True
    value = prefetch[key]
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"
