"""The ``rls-cds`` command line: ``serve``, ``evaluate``, ``explain``, ``check``, ``dev-keys``,
``dev-token``, ``db upgrade``, ``feedback-report`` and ``--version``.

``evaluate`` is a contract other work and outside checks rely on; its options and output
do not change silently:

    rls-cds evaluate --hook HOOK --bundle FILE [--draft-orders FILE] [--now ISO-DATETIME]
                     [--explain]
    rls-cds explain --hook HOOK --bundle FILE [--draft-orders FILE] [--now ISO-DATETIME]
    rls-cds check --fhir-server URL --patient ID [--token T] [--hook HOOK]
                  [--draft-orders FILE] [--allow-partial] [--explain]
    rls-cds dev-keys --out DIR [--iss ISS]
    rls-cds dev-token --key KEYFILE --iss ISS --aud URL [--kid KID] [--ttl 300]
    rls-cds db upgrade
    rls-cds feedback-report [--since DATE] [--format table|json|csv]
    rls-cds kb check [DIR]

It runs the bundle through the same HTTP code path as the service (an in-process request)
and prints the CDS Hooks response JSON; exit 0 on success, 2 with one line on stderr for
unreadable input. ``--explain`` leaves stdout as it is and writes each topic's decision to
stderr. ``check`` and ``explain`` live in cds_service.cli_check.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cds_service import __version__

if TYPE_CHECKING:
    from flask import Flask

    from cds_service.settings import Settings

DEV_ISSUER = "https://ehr.example.org/dev"

#: What each gunicorn worker calls to build its app.
GUNICORN_APP = "cds_service.app:create_app()"

HOOK_SERVICES = {
    "patient-view": "rls-secondary-causes",
    "order-select": "rls-order-select",
    "order-sign": "rls-order-sign",
}


class InputError(Exception):
    """Raised for input the command cannot use; printed as one line, exit 2."""

    exit_code = 2


class HookFailed(InputError):
    """Raised when `check` got an error answer (400, 412 ...) from the hook; exit 1."""

    exit_code = 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except InputError as exc:
        print(f"rls-cds: {exc}", file=sys.stderr)
        return exc.exit_code


DESCRIPTION = """\
A CDS Hooks 2.0 service that finds the secondary and vascular causes of restless legs
syndrome in a patient's FHIR R4 record and answers with cards."""

EPILOG = """\
examples:
  rls-cds serve --demo                      the demo on http://127.0.0.1:8080 (no auth)
  rls-cds serve --prod                      production: gunicorn, JWT checking on
  rls-cds evaluate --hook patient-view --bundle fhir_fixtures/patients/rls-low-ferritin.json
  rls-cds explain --hook patient-view --bundle fhir_fixtures/patients/no-rls.json
  rls-cds check --fhir-server https://ehr.example/fhir --patient 123 --token T --explain

Settings are RLS_CDS_* environment variables (see the README's Configuration).
"rls-cds COMMAND --help" describes one command."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rls-cds",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rls-cds {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="interface to bind (default: RLS_CDS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: RLS_CDS_PORT or 8080)")
    serve.add_argument(
        "--demo", action="store_true", help="demo mode: no client authentication (never for PHI)"
    )
    serve.add_argument(
        "--prod",
        action="store_true",
        help="run under gunicorn with cds_service.gunicorn_conf (workers per CPU, metrics)",
    )
    serve.set_defaults(run=_serve)

    evaluate = commands.add_parser("evaluate", help="print the cards for a patient bundle")
    evaluate.add_argument("--hook", required=True, choices=sorted(HOOK_SERVICES))
    evaluate.add_argument("--bundle", required=True, type=Path, help="FHIR Bundle, one patient")
    evaluate.add_argument("--draft-orders", type=Path, help="Bundle of draft orders (order hooks)")
    evaluate.add_argument("--now", type=_instant, help="evaluation time (default: now), ISO 8601")
    evaluate.set_defaults(run=_evaluate)

    evaluate.add_argument(
        "--explain",
        action="store_true",
        help="also write each topic's decision (fired, or why not) to stderr",
    )
    from cds_service import cli_check  # check and explain: their own module

    cli_check.add_commands(commands)

    dev_keys = commands.add_parser(
        "dev-keys", help="write a demo ES384 key pair, its JWKS and a trusted-clients file"
    )
    dev_keys.add_argument("--out", required=True, type=Path, help="directory to write into")
    dev_keys.add_argument(
        "--iss", default=DEV_ISSUER, help=f"issuer the trusted-clients file names ({DEV_ISSUER})"
    )
    dev_keys.set_defaults(run=_dev_keys)

    dev_token = commands.add_parser("dev-token", help="print a signed CDS Hooks client JWT")
    dev_token.add_argument("--key", required=True, type=Path, help="private key PEM (EC or RSA)")
    dev_token.add_argument("--iss", required=True, help="issuer (a trusted client's iss)")
    dev_token.add_argument("--aud", required=True, help="the exact URL the token is for")
    dev_token.add_argument("--kid", help="key id (default: the key's RFC 7638 thumbprint)")
    dev_token.add_argument(
        "--ttl", type=int, default=300, help="seconds until it expires (default 300)"
    )
    dev_token.set_defaults(run=_dev_token)

    db = commands.add_parser("db", help="the store's database")
    db_commands = db.add_subparsers(required=True, metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="apply the database migrations")
    upgrade.set_defaults(run=_db_upgrade)

    _add_kb(commands)

    report = commands.add_parser(
        "feedback-report", help="per topic: cards issued, accepted, overridden, and why"
    )
    report.add_argument("--since", type=_instant, help="only feedback and cards since (ISO 8601)")
    report.add_argument("--format", default="table", choices=["table", "json", "csv"])
    report.set_defaults(run=_feedback_report)
    return parser


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def settings_from_env(**overrides: Any) -> Settings:
    """The settings from the environment and the options; a bad value is a one-line error
    naming its variable (exit 2), never a traceback. The value itself is not repeated: it
    may be a secret."""
    from pydantic import ValidationError

    from cds_service.settings import Settings

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{setting_name(error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise InputError(f"configuration: {problems}") from None


def setting_name(loc: tuple[Any, ...]) -> str:
    """The environment variable of a Settings field (``port`` -> ``RLS_CDS_PORT``)."""
    name = str(loc[0]) if loc else "settings"
    return name if name.isupper() else f"RLS_CDS_{name.upper()}"


def _store() -> Any:
    """The feedback store of the configured database (DATABASE_URL, else the SQLite file)."""
    from cds_service.feedback.store import FeedbackStore
    from cds_service.store import make_engine

    return FeedbackStore(make_engine(settings_from_env()), secret=None)


def _db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        _store().migrate()
    except SQLAlchemyError as exc:
        raise InputError(f"the database could not be migrated: {type(exc).__name__}") from None
    print("database migrated to the newest schema")
    return 0


def _feedback_report(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from cds_service.feedback import report

    try:
        topics, unknown = _store().report(args.since)
    except SQLAlchemyError as exc:
        raise InputError(f"the store could not be read: {type(exc).__name__}") from None
    sys.stdout.write(report.render(report.as_data(topics, unknown, args.since), args.format))
    return 0


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"demo": True} if args.demo else {}
    overrides |= {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if args.prod:  # the master's imports keep all they allocate (cds_service.preload)
        gc.disable()
    settings = settings_from_env(**overrides)
    if args.prod:
        return _run_gunicorn(overrides, settings)
    check_startup(settings)  # before any log line
    app = _create_app(settings)
    # SIGTERM ends the process as an exit, not a kill: the card recorder flushes at exit.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    app.run(host=settings.host, port=settings.port, threaded=True)
    return 0


def _exit_on_sigterm(_signal: int, _frame: object) -> None:
    raise SystemExit(0)


def check_startup(settings: Settings) -> None:
    """What start-up reads from files, secrets and settings, checked before gunicorn."""
    from cds_service.auth import require_public_base_url
    from cds_service.auth.clients import TrustedClientsInvalid, load_trusted_clients
    from cds_service.errors import ConfigurationInvalid
    from cds_service.feedback import SecretMissing, patient_key_secret

    try:
        require_public_base_url(settings)
        if settings.trusted_clients and not settings.demo:
            load_trusted_clients(settings.trusted_clients)
        patient_key_secret(settings)
    except ConfigurationInvalid as exc:
        raise InputError(str(exc)) from None
    except TrustedClientsInvalid as exc:
        raise InputError(f"RLS_CDS_TRUSTED_CLIENTS: {exc}") from None
    except SecretMissing as exc:
        raise InputError(f"RLS_CDS_PATIENT_KEY_SECRET: {exc}") from None


def _create_app(settings: Settings) -> Flask:
    """create_app, with a configuration it cannot use reported in one line (exit 2)."""
    from cds_service.app import create_app
    from cds_service.auth import TrustedClientsInvalid
    from cds_service.errors import ConfigurationInvalid
    from cds_service.feedback import SecretMissing
    from cds_service.knowledge import KnowledgeError

    try:
        return create_app(settings)
    except ConfigurationInvalid as exc:
        raise InputError(str(exc)) from None
    except TrustedClientsInvalid as exc:
        raise InputError(f"RLS_CDS_TRUSTED_CLIENTS: {exc}") from None
    except SecretMissing as exc:
        raise InputError(f"RLS_CDS_PATIENT_KEY_SECRET: {exc}") from None
    except KnowledgeError as exc:
        raise InputError(f"knowledge base (RLS_CDS_CARDS_DIR): {exc}") from None


def _run_gunicorn(overrides: dict[str, Any], settings: Settings) -> int:
    """This process becomes gunicorn's master, before anything heavy is imported here: the
    master imports the application once, and its workers inherit it (cds_service.preload).
    The options travel as RLS_CDS_* variables, which the config and every worker read."""
    for name, value in overrides.items():
        os.environ[f"RLS_CDS_{name.upper()}"] = str(value).lower() if value is True else str(value)
    from gunicorn.app.wsgiapp import WSGIApplication

    from cds_service import preload

    # gunicorn's own command line, as the Dockerfile's documented equivalent runs it
    sys.argv = [sys.argv[0], "-c", "python:cds_service.gunicorn_conf", GUNICORN_APP]
    server = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]", prog="rls-cds serve --prod")
    preload.prepare(settings)  # before the arbiter's first log line: a bad setting, one line
    server.run()
    return 0


def _local_app(now: datetime | None, fhir_servers: tuple[str, ...] = ()) -> Flask:
    """The service in-process for one command: no authentication, no files, quiet logs."""
    from cds_service.app import create_app

    moment = now or datetime.now(UTC)
    settings = settings_from_env(
        demo=True, log_level="ERROR", database_url="sqlite://", fhir_server_allowlist=fhir_servers
    )
    return create_app(settings, clock=lambda: moment)


def _evaluate(args: argparse.Namespace) -> int:
    """The response JSON on stdout, unchanged by --explain (whose lines go to stderr)."""
    from cds_service.cli_check import evaluate_bundle
    from cds_service.explain import render_text

    response, outcome = evaluate_bundle(args)
    json.dump(response, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if args.explain:
        print(render_text(outcome.decisions), file=sys.stderr)
    return 0


def _dev_keys(args: argparse.Namespace) -> int:
    """Write the files and say how to use them; the private key never goes to stdout."""
    from cds_service.auth.devkeys import write_dev_keys

    try:
        paths = write_dev_keys(args.out, args.iss)
    except OSError as exc:
        raise InputError(f"{args.out}: {exc.strerror or exc}") from None
    kid = json.loads(paths["jwks"].read_text("utf-8"))["keys"][0]["kid"]
    print(f"private key (ES384): {paths['key']}")
    print(f"JWK Set:             {paths['jwks']}  (kid {kid})")
    print(f"trusted clients:     {paths['clients']}  (iss {args.iss})")
    print(f"next: RLS_CDS_TRUSTED_CLIENTS={paths['clients']} rls-cds serve")
    print(
        f"      rls-cds dev-token --key {paths['key']} --iss {args.iss} "
        "--aud http://127.0.0.1:8080/cds-services/rls-secondary-causes"
    )
    return 0


def _dev_token(args: argparse.Namespace) -> int:
    from cds_service.auth.devkeys import load_private_key, mint_token

    if args.ttl < 1:
        raise InputError("--ttl must be at least 1 second")
    try:
        key = load_private_key(args.key)
    except OSError as exc:
        raise InputError(f"{args.key}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise InputError(f"{args.key}: not a usable private key ({exc})") from None
    print(mint_token(key, args.iss, args.aud, kid=args.kid, ttl_s=args.ttl))
    return 0


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not valid JSON") from None


def _add_kb(commands: Any) -> None:
    """``rls-cds kb check [DIR]``: the card directory's problems, every one, file and field."""
    kb = commands.add_parser("kb", help="the knowledge base (cards/)")
    kb_commands = kb.add_subparsers(required=True, metavar="ACTION")
    check = kb_commands.add_parser(
        "check",
        help="check a card directory: every problem with its file and field; exit 1 on any",
    )
    check.add_argument(
        "directory",
        nargs="?",
        type=Path,
        help="the card directory (default: the cards the service ships)",
    )
    check.set_defaults(run=_kb_check)


def _kb_check(args: argparse.Namespace) -> int:
    from cds_service.knowledge_check import check_directory, report
    from cds_service.resources import shipped_dir

    directory = args.directory or shipped_dir("cards")
    problems = check_directory(directory)
    print(report(directory, problems), file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0
