"""``rls-cds check`` and ``rls-cds explain``: what an integrator runs to see whether the
service works with their FHIR server, and why each topic did or did not fire.

    rls-cds check --fhir-server URL --patient ID [--token T] [--hook HOOK]
                  [--draft-orders FILE] [--now ISO] [--allow-partial] [--explain]
    rls-cds explain --hook HOOK --bundle FILE [--draft-orders FILE] [--now ISO]
                    [--format text|json]

``check`` exits 0 only when the hook answered with every required prefetch key read; the
cards JSON is on stdout then, and only then. The report (each FHIR query with its status
and time, a hint per failing status) is on stderr, on success and on failure alike. Exit 1:
the hook refused (412, 400 ...), the patient does not exist, or a required key was not read
(``--allow-partial`` accepts that). ``--explain`` adds each topic's decision to stderr.

``explain`` takes ``rls-cds evaluate``'s options and prints the decisions on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cds_service.cli import (
    HOOK_SERVICES,
    HookFailed,
    InputError,
    _instant,
    _local_app,
    _read_json,
)
from cds_service.hooks.bundles import BundleError, hook_context, hook_request

if TYPE_CHECKING:  # the service's modules load when a command runs, not for --help
    from cds_service.evaluation import Outcome
    from cds_service.fhir.client import RequestLog
    from cds_service.fhir.errors import FhirError
    from cds_service.fhir.gather import Gathered

#: What to try for each HTTP status of a FHIR query (None: no answer at all).
STATUS_HINTS: Mapping[int, str] = {
    401: "the FHIR server wants a token: pass --token (a bearer token it accepts)",
    403: "the token is refused for this query: pass a --token with patient read scopes",
    404: "not found: check --patient and that --fhir-server is the FHIR base URL",
    429: "the FHIR server is rate limiting: retry later",
}
UNREACHABLE_HINT = "connection refused or no such host: check the --fhir-server URL"
TIMEOUT_HINT = "no answer in time: the server is slow (RLS_CDS_HOOK_DEADLINE_S sets the wait)"
SERVER_ERROR_HINT = "the FHIR server failed (5xx): see its logs"


def add_commands(commands: Any) -> None:
    """Register ``check`` and ``explain`` on the ``rls-cds`` sub-command parser."""
    check = commands.add_parser(
        "check", help="run a hook against a FHIR server with no prefetch and report"
    )
    check.add_argument("--fhir-server", required=True, help="FHIR base URL, e.g. https://x/fhir")
    check.add_argument("--patient", required=True, help="Patient id on that server")
    check.add_argument("--token", help="bearer token for the FHIR server (never printed)")
    check.add_argument("--hook", default="patient-view", choices=sorted(HOOK_SERVICES))
    check.add_argument(
        "--draft-orders", type=Path, help="Bundle of draft orders (order-select, order-sign)"
    )
    check.add_argument("--now", type=_instant, help="evaluation time (default: now), ISO 8601")
    check.add_argument(
        "--allow-partial",
        action="store_true",
        help="exit 0 even when a required prefetch key could not be read",
    )
    check.add_argument(
        "--explain", action="store_true", help="also say, on stderr, why each topic fired or not"
    )
    check.set_defaults(run=run_check)

    explain = commands.add_parser(
        "explain", help="for a patient bundle: each topic of the hook, fired or why not"
    )
    explain.add_argument("--hook", required=True, choices=sorted(HOOK_SERVICES))
    explain.add_argument("--bundle", required=True, type=Path, help="FHIR Bundle, one patient")
    explain.add_argument("--draft-orders", type=Path, help="Bundle of draft orders (order hooks)")
    explain.add_argument("--now", type=_instant, help="evaluation time (default: now), ISO 8601")
    explain.add_argument("--format", default="text", choices=["text", "json"])
    explain.set_defaults(run=run_explain)


def evaluate_bundle(args: argparse.Namespace) -> tuple[dict[str, Any], Outcome]:
    """`rls-cds evaluate`'s in-process HTTP call: the response body and the outcome behind
    it (kept by the hook endpoint for its log line). Exit 2 on unusable input."""
    from flask import g

    bundle = _read_json(args.bundle)
    drafts = _read_json(args.draft_orders) if args.draft_orders else None
    app = _local_app(args.now)
    service = app.extensions["rls_cds"].services[HOOK_SERVICES[args.hook]]
    try:
        body = hook_request(service, bundle, drafts)
    except BundleError as exc:
        raise InputError(f"{args.bundle}: {exc}") from None
    with app.test_client() as client:  # keeps the request's context, and g, afterwards
        response = client.post(f"/cds-services/{service.id}", json=body)
        outcome: Outcome | None = g.get("hook_outcome")
    if response.status_code != 200 or outcome is None:
        message = response.get_json(silent=True) or {}
        raise InputError(f"{response.status_code}: {message.get('message', 'request failed')}")
    return response.get_json(), outcome


def run_explain(args: argparse.Namespace) -> int:
    from cds_service.explain import as_data, render_text

    _, outcome = evaluate_bundle(args)
    if args.format == "json":
        json.dump(as_data(outcome.decisions), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(render_text(outcome.decisions))
    return 0


def run_check(args: argparse.Namespace) -> int:
    """The hook against a live FHIR server; see the module docstring for exits and output."""
    from cds_service.errors import PrefetchUnavailable, ServiceError
    from cds_service.explain import render_text
    from cds_service.hooks.services import OPTIONAL_KEYS

    base = args.fhir_server.rstrip("/")
    drafts = _read_json(args.draft_orders) if args.draft_orders else None
    try:
        context = hook_context(args.hook, args.patient, drafts)
    except BundleError as exc:
        raise InputError(str(exc)) from None
    app = _local_app(args.now, fhir_servers=(base,))
    service_id = HOOK_SERVICES[args.hook]
    body: dict[str, Any] = {
        "hook": args.hook,
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": base,
        "context": context,
    }
    if args.token:
        body["fhirAuthorization"] = {
            "access_token": args.token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "rls-cds-check",
        }
    evaluator = app.extensions["rls_cds"].evaluator
    started = time.monotonic()
    try:
        outcome = evaluator.evaluate(service_id, body)
    except ServiceError as error:
        gathered = error.gathered if isinstance(error, PrefetchUnavailable) else None
        if gathered is not None:  # the table says what failed and how: one short line after
            print(queries_report(base, gathered), file=sys.stderr)
            raise HookFailed(
                f"{error.status} {error.message} (not read: {', '.join(gathered.failed)})"
            ) from None
        reasons = "; ".join(", ".join(f"{k}: {v}" for k, v in d.items()) for d in error.details)
        message = f"{error.status} {error.message}" + (f" ({reasons})" if reasons else "")
        raise HookFailed(message) from None
    elapsed = time.monotonic() - started
    print(check_report(base, outcome, elapsed), file=sys.stderr)
    if args.explain:
        print(render_text(outcome.decisions), file=sys.stderr)
    if "patient" in outcome.gathered.values and outcome.gathered.values["patient"] is None:
        raise HookFailed(f"Patient/{args.patient} not found at {base}")
    required = set(evaluator.service(service_id).prefetch) - OPTIONAL_KEYS
    unread = sorted(required & set(outcome.gathered.failed))
    if unread and not args.allow_partial:
        raise HookFailed(
            f"required data not read: {', '.join(unread)}; the cards may miss what it holds "
            "(--allow-partial accepts this)"
        )
    json.dump(outcome.response, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def queries_report(base: str, gathered: Gathered) -> str:
    """Each FHIR query with its status and time, what was not read, and a hint per failing
    status: the table an operator reads first, whether the hook answered or not."""
    lines = ["FHIR queries:"]
    for made in gathered.requests:
        status = made.status if made.status is not None else "no answer"
        lines.append(
            f"  {status!s:>9}  {made.seconds * 1000:7.0f} ms  {made.url.removeprefix(base)}"
        )
    for key, error in gathered.failed.items():
        lines.append(f"  not read: {key} ({error})")
    for key in gathered.truncated:
        lines.append(f"  incomplete: {key} (paging stopped at the page bound or a bad link)")
    lines += [f"hint: {hint}" for hint in hints(gathered.requests, gathered.failed.values())]
    return "\n".join(lines)


def hints(requests: Iterable[RequestLog], failures: Iterable[FhirError]) -> list[str]:
    """One hint per distinct failing status (or failure without an answer), in order."""
    from cds_service.fhir.errors import FhirUnreachable

    found: dict[str, None] = {}
    for made in requests:
        if made.status is None:
            continue
        if made.status in STATUS_HINTS:
            found[STATUS_HINTS[made.status]] = None
        elif made.status >= 500:
            found[SERVER_ERROR_HINT] = None
    for error in failures:
        if isinstance(error, FhirUnreachable):
            found[UNREACHABLE_HINT] = None
        elif "timed out" in str(error) or "deadline" in str(error):
            found[TIMEOUT_HINT] = None
    return list(found)


def check_report(base: str, outcome: Outcome, elapsed: float) -> str:
    """A few lines for a person: the queries (queries_report), what was read and skipped,
    and the cards."""
    lines = [f"hook answered in {elapsed * 1000:.0f} ms; " + queries_report(base, outcome.gathered)]
    read = ", ".join(f"{kind} {n}" for kind, n in sorted(outcome.report.read.items()))
    lines.append(f"resources read: {read or 'none'}")
    for label, counts in (("skipped", outcome.report.skipped), ("ignored", outcome.report.ignored)):
        if counts:
            lines.append(f"{label}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
    cards = outcome.response["cards"]
    lines.append(f"cards: {len(cards)}")
    lines += [
        f"  {c['indicator']:<8} {c['source']['topic']['code']}: {c['summary']}" for c in cards
    ]
    return "\n".join(lines)
