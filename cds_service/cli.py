"""The ``rls-cds`` command line: ``serve`` and ``evaluate``.

``evaluate`` is a contract other work and outside checks rely on; its options and output
do not change silently:

    rls-cds evaluate --hook HOOK --bundle FILE [--draft-orders FILE] [--now ISO-DATETIME]

It runs the bundle through the same HTTP code path as the service (an in-process request)
and prints the CDS Hooks response JSON; exit 0 on success, 2 with one line on stderr for
unreadable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cds_service.hooks.bundles import BundleError, hook_request

HOOK_SERVICES = {
    "patient-view": "rls-secondary-causes",
    "order-select": "rls-order-select",
    "order-sign": "rls-order-sign",
}


class InputError(Exception):
    """Raised for input the command cannot use; printed as one line, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except InputError as exc:
        print(f"rls-cds: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rls-cds", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to bind (default: RLS_CDS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: RLS_CDS_PORT or 8080)")
    serve.add_argument(
        "--demo", action="store_true", help="demo mode: no client authentication (never for PHI)"
    )
    serve.set_defaults(run=_serve)

    evaluate = commands.add_parser("evaluate", help="print the cards for a patient bundle")
    evaluate.add_argument("--hook", required=True, choices=sorted(HOOK_SERVICES))
    evaluate.add_argument("--bundle", required=True, type=Path, help="FHIR Bundle, one patient")
    evaluate.add_argument("--draft-orders", type=Path, help="Bundle of draft orders (order hooks)")
    evaluate.add_argument("--now", type=_instant, help="evaluation time (default: now), ISO 8601")
    evaluate.set_defaults(run=_evaluate)
    return parser


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _serve(args: argparse.Namespace) -> int:
    from cds_service.app import create_app
    from cds_service.settings import Settings

    overrides: dict[str, Any] = {"demo": True} if args.demo else {}
    overrides |= {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = Settings(**overrides)
    app = create_app(settings)
    app.run(host=settings.host, port=settings.port, threaded=True)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from cds_service.app import create_app
    from cds_service.settings import Settings

    bundle = _read_json(args.bundle)
    drafts = _read_json(args.draft_orders) if args.draft_orders else None
    now = args.now or datetime.now(UTC)
    settings = Settings(demo=True, log_level="ERROR", database_url="sqlite://")
    app = create_app(settings, clock=lambda: now)
    service = app.extensions["rls_cds"].services[HOOK_SERVICES[args.hook]]
    try:
        body = hook_request(service, bundle, drafts)
    except BundleError as exc:
        raise InputError(f"{args.bundle}: {exc}") from None
    response = app.test_client().post(f"/cds-services/{service.id}", json=body)
    if response.status_code != 200:
        message = response.get_json(silent=True) or {}
        raise InputError(f"{response.status_code}: {message.get('message', 'request failed')}")
    json.dump(response.get_json(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not valid JSON") from None
