"""Where the data shipped with the service (knowledge base, demo fixtures) is found at run time."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """Return the directory `name` (``cards`` or ``fhir_fixtures``).

    An installed wheel carries it inside the package (``_data/``); a source checkout or
    editable install has it at the repository root, next to the package.
    """
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{name}/ was not installed with cds_service")
