"""GET|POST /: the demo page (demo mode only; 404 otherwise).

The page builds a CDS Hooks request from a demo patient (or a pasted Bundle) with the same
code as ``rls-cds evaluate``, sends it to the real hook endpoint in-process (through the
same authentication, validation, evaluation and card recording as any EHR call), and shows
the cards as an EHR would. Card text is rendered by ``api.markdown`` and everything else by
Jinja's autoescaping, so no text from a card or a patient record becomes markup. Accepting a
suggestion or overriding a card posts the spec's feedback from the browser (static/demo.js).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, current_app, g, render_template, request

from cds_service.api import markdown, runtime
from cds_service.api.demo_data import (
    EXAMPLE,
    HOOKS,
    MEDICATION,
    MEDICATIONS,
    Choice,
    ChoiceInvalid,
    demo_patients,
    draft_orders,
    example_drafts,
    load_patient,
    patient_descriptions,
    patient_summary,
)
from cds_service.api.demo_feedback import Hidden, hidden_cards
from cds_service.evaluation import Outcome
from cds_service.explain import as_data, with_overrides
from cds_service.hooks.bundles import BundleError, hook_request, patient_resources

bp = Blueprint(
    "demo",
    __name__,
    template_folder="../templates",
    static_folder="../static",
    static_url_path="/demo/static",
)
#: Drawn as round badges by demo.css (no icon font needed).
ICONS = {"info": "i", "warning": "!", "critical": "!!"}


@dataclass
class Run:
    """One call of a hook made by the page, or the reason it could not be made."""

    error: str | None = None
    patient: dict[str, str] = field(default_factory=dict)
    service_id: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    status: int = 0
    response: Any = None
    hidden: Hidden = field(default_factory=Hidden)
    """Cards the answer left out because of feedback (demo_feedback)."""
    explanation: list[dict[str, Any]] = field(default_factory=list)
    """Each topic of the hook: fired, or the engine's reason why not (cds_service.explain)."""

    @property
    def cards(self) -> list[dict[str, Any]]:
        if self.status != 200 or not isinstance(self.response, dict):
            return []
        return list(self.response.get("cards") or [])


@bp.before_request
def _demo_only() -> None:
    """The page, its assets and its actions exist only in demo mode."""
    if not runtime().settings.demo:
        abort(404)


@bp.app_template_filter("card_markdown")
def _card_markdown(text: str | None) -> Any:
    return markdown.render(text)


@bp.app_template_filter("safe_url")
def _safe_url(url: object) -> str:
    return markdown.safe_url(url)


@bp.app_template_filter("pretty_json")
def _pretty_json(value: object) -> str:
    """Indented JSON as plain text (autoescaped where it is placed)."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@bp.route("/", methods=["GET", "POST"])
def page():
    choice = Choice.from_form(request.values)
    run = _run(choice) if choice.asked else None
    html = render_template(
        "demo.html",
        choice=choice,
        run=run,
        patients=demo_patients(),
        descriptions=patient_descriptions(),
        examples=example_drafts(),
        medications=MEDICATIONS,
        hooks=HOOKS,
        example_prefix=EXAMPLE,
        medication_prefix=MEDICATION,
        icons=ICONS,
    )
    return html, 400 if run is not None and run.error else 200


def _run(choice: Choice) -> Run:
    """Build the request the choice describes and send it to the hook endpoint."""
    rt = runtime()
    try:
        if choice.hook not in HOOKS:
            raise ChoiceInvalid("there is no such hook here")
        bundle = _pasted(choice.bundle) if choice.bundle.strip() else load_patient(choice.patient)
        patient_id, resources = patient_resources(bundle)
        drafts = None
        if choice.hook != "patient-view":
            drafts = draft_orders(choice.draft, patient_id, rt.evaluator.now().date())
        service_id = HOOKS[choice.hook]
        body = hook_request(rt.services[service_id], bundle, drafts)
    except (ChoiceInvalid, BundleError) as exc:
        return Run(error=str(exc))
    with current_app.test_client() as client:  # keeps the hook call's g until the end
        response = client.post(f"/cds-services/{service_id}", json=body)
        outcome: Outcome | None = g.get("hook_outcome")
    hidden = hidden_cards(outcome)
    explanation: list[dict[str, Any]] = []
    if outcome is not None and response.status_code == 200:
        overrides = {
            c.topic: f"overridden as {c.reason} on {c.since}, until {c.until}" for c in hidden.cards
        }
        explanation = as_data(with_overrides(outcome.decisions, overrides))
    return Run(
        patient=patient_summary(resources, patient_id),
        service_id=service_id,
        request=body,
        status=response.status_code,
        response=response.get_json(silent=True),
        hidden=hidden,
        explanation=explanation,
    )


def _pasted(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"the pasted text is not JSON (line {exc.lineno})") from None
    except RecursionError:
        raise BundleError("the pasted JSON nests too deeply") from None
