"""Iron status in RLS: iron studies due, and iron below the RLS treatment target.

Thresholds come from cards/iron-*.toml (AASM 2024 guideline, IRLSSG 2018); this module
only decides which variant applies. In end-stage kidney disease or dialysis the targets differ
(ferritin < 200 ng/mL and TSAT < 20 %, IV iron sucrose).
"""

from __future__ import annotations

from collections.abc import Mapping

from cds_service.clinical.facts import LabResult
from cds_service.clinical.findings import Finding
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import (
    Params,
    at_most,
    below,
    data_point,
    format_lab,
    lab_points,
    pending,
)
from cds_service.clinical.rules.pregnancy import is_pregnant

Thresholds = Mapping[str, float]

FERRITIN = "ferritin"
TSAT = "transferrin-saturation"
ESRD = "esrd-dialysis"
ORDER_IRON = "order-iron-studies"


def studies_due(picture: PatientPicture, t: Params) -> list[Finding]:
    """`iron-studies-due`: no ferritin within the recency window, and none ordered."""
    window = t.window()
    if picture.latest(FERRITIN, window) is not None:
        return []
    if pending(picture, ORDER_IRON, window):
        return []
    # In pregnancy the pregnancy card offers the ferritin order (with its pregnancy
    # target): offering it here too would let one click order it twice.
    pregnant = is_pregnant(picture, t)
    suggestions = () if pregnant else None
    notes = ("The pregnancy card offers the ferritin order.",) if pregnant else ()
    older = next(iter(picture.on_record(FERRITIN)), None)
    if older is None:
        return [Finding("iron-studies-due", "never", {}, suggestions=suggestions, notes=notes)]
    return [
        Finding(
            "iron-studies-due",
            "outdated",
            {"last_ferritin": format_lab(older), "last_date": older.effective.date().isoformat()},
            data=(data_point(older),),
            suggestions=suggestions,
            notes=notes,
        )
    ]


def below_target(picture: PatientPicture, t: Params) -> list[Finding]:
    """`iron-below-target`: ferritin or TSAT below the RLS target (ESRD targets on dialysis,
    pregnancy targets in pregnancy)."""
    window = t.window()
    ferritin = picture.latest(FERRITIN, window)
    tsat = picture.latest(TSAT, window)
    esrd = picture.active_conditions(ESRD)
    if esrd:
        return _below_target_esrd(ferritin, tsat, esrd[0].name, t)
    if is_pregnant(picture, t):
        return _below_target_pregnancy(ferritin, tsat, t)
    ferritin_low = ferritin is not None and at_most(ferritin, t["ferritin_iv_max"])
    tsat_low = tsat is not None and below(tsat, t["tsat_low"])
    if not (ferritin_low or tsat_low):
        return []
    if tsat_low or (ferritin is not None and at_most(ferritin, t["ferritin_oral_max"])):
        variant = "oral-or-iv"
    else:
        variant = "iv-only"
    notes: list[str] = []
    suggestions: tuple[str, ...] | None = None
    if tsat is None:
        notes.append("No transferrin saturation in the last 12 months: consider checking it.")
    elif not below(tsat, t["tsat_iv_cap"]):
        notes.append(
            f"TSAT is {format_lab(tsat)}: IV iron is not suggested at or above "
            f"{t['tsat_iv_cap']:g} %."
        )
        suggestions = ("oral-iron",) if variant == "oral-or-iv" else ()
    return [_finding(variant, ferritin, tsat, notes, suggestions)]


def _below_target_pregnancy(
    ferritin: LabResult | None, tsat: LabResult | None, t: Thresholds
) -> list[Finding]:
    """IRLSSG pregnancy consensus: oral iron below ferritin 75; IV iron is for the 2nd and
    3rd trimester only, with obstetrics, so it is never a one-click suggestion here."""
    ferritin_low = ferritin is not None and below(ferritin, t["pregnancy_ferritin_below"])
    tsat_low = tsat is not None and below(tsat, t["tsat_low"])
    if not (ferritin_low or tsat_low):
        return []
    return [_finding("pregnancy", ferritin, tsat, [], None)]


def _below_target_esrd(
    ferritin: LabResult | None, tsat: LabResult | None, condition: str, t: Thresholds
) -> list[Finding]:
    if ferritin is None or tsat is None:
        return []
    if not (below(ferritin, t["esrd_ferritin_below"]) and below(tsat, t["tsat_low"])):
        return []
    return [_finding("esrd", ferritin, tsat, [], None, esrd_condition=condition)]


def _finding(
    variant: str,
    ferritin: LabResult | None,
    tsat: LabResult | None,
    notes: list[str],
    suggestions: tuple[str, ...] | None,
    **extra: str,
) -> Finding:
    labs = [lab for lab in (ferritin, tsat) if lab is not None]
    values = {
        **extra,
        "ferritin": format_lab(ferritin) if ferritin else "not measured",
        "tsat": format_lab(tsat) if tsat else "not measured",
        "iron_summary": ", ".join(f"{_short(lab)} {format_lab(lab)}" for lab in labs),
    }
    data = tuple(point for lab in labs for point in lab_points(lab))
    return Finding("iron-below-target", variant, values, data, suggestions, tuple(notes))


def _short(lab: LabResult) -> str:
    return "ferritin" if lab.analyte == FERRITIN else "TSAT"
