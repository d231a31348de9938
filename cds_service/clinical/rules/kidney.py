"""Kidney function in RLS: tests due, chronic kidney disease, and gabapentinoid renal doses.

CKD is a common secondary cause of RLS, changes the iron targets (ESRD) and the doses of the
drugs that treat RLS. eGFR stages follow KDIGO; gabapentinoid limits follow the drug labels
by creatinine clearance (cards/gabapentinoid-renal-dose.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from cds_service.clinical.dosing import DoseBand, DrugDosing, daily_dose_mg, product_strength_mg
from cds_service.clinical.facts import LabResult, MedicationFact
from cds_service.clinical.findings import DataPoint, Finding, Target
from cds_service.clinical.kidney import KidneyFunction, kidney_function
from cds_service.clinical.picture import PatientPicture
from cds_service.clinical.rules.common import (
    Params,
    below,
    condition_point,
    data_point,
    format_lab,
    lab_points,
    medication_point,
    names,
    pending,
)
from cds_service.clinical.rules.pregnancy import is_pregnant

CREATININE = "creatinine"
EGFR = "egfr"
CKD = "ckd-stage-3-5"
ESRD = "esrd-dialysis"
DIALYSIS = "dialysis"
ORDER_KIDNEY = "order-kidney-function"
GABAPENTINOIDS = ("gabapentin-enacarbil", "gabapentin", "pregabalin")
"""Enacarbil first: "gabapentin enacarbil" also names gabapentin."""
FREQUENCY_WORDS = {
    0.5: "every other day",
    1: "once daily",
    2: "twice daily",
    3: "three times daily",
}
#: A reduced eGFR must persist this long to mean chronic kidney disease (KDIGO).
CHRONIC = timedelta(days=90)


def renal_function_due(picture: PatientPicture, t: Params) -> list[Finding]:
    """`renal-function-due`: no creatinine or eGFR within the recency window, none ordered."""
    window = t.window()
    if picture.latest(CREATININE, window) or picture.latest(EGFR, window):
        return []
    if pending(picture, ORDER_KIDNEY, window):
        return []
    notes: tuple[str, ...] = ()
    gabapentinoids = _gabapentinoids(picture)
    if gabapentinoids:
        notes = (
            f"The patient takes {names(gabapentinoids)}, whose dose depends on kidney function.",
        )
    older = [r for r in (*picture.on_record(CREATININE), *picture.on_record(EGFR)) if r.reported]
    if not older:
        return [Finding("renal-function-due", "never", {}, notes=notes)]
    last = max(older, key=lambda r: r.effective)
    return [
        Finding(
            "renal-function-due",
            "outdated",
            {"last_result": format_lab(last), "last_date": last.effective.date().isoformat()},
            data=(data_point(last),),
            notes=notes,
        )
    ]


def kidney_disease(picture: PatientPicture, t: Params) -> list[Finding]:
    """`kidney-disease`: recent eGFR below 60, or CKD stage 3 to 5, ESRD or dialysis listed."""
    egfr = picture.latest(EGFR, t.window())
    dialysis = picture.active_conditions(DIALYSIS)
    listed = [c for c in picture.conditions if c.active and ({CKD, ESRD, DIALYSIS} & c.value_sets)]
    low = egfr is not None and below(egfr, t["egfr_below"])
    if not (low or listed):
        return []
    data: list[DataPoint] = [condition_point(c) for c in listed]
    notes: list[str] = []
    values = {"conditions": names(listed), "egfr": "not measured", "stage": ""}
    if egfr is not None:
        data += lab_points(egfr)
        values |= {"egfr": format_lab(egfr), "stage": kdigo_stage(egfr.value)}
        if low and not _persistent(picture, t):
            notes.append(
                "Only one reduced eGFR: chronic kidney disease needs eGFR below "
                f"{t['egfr_below']:g} for more than 3 months; consider repeating it."
            )
    if dialysis:
        variant = "dialysis"
    elif failing_egfr(picture, t) is not None:
        variant = "kidney-failure"
    elif any(ESRD in c.value_sets for c in listed):
        variant = "esrd-listed"
    elif low:
        variant = "egfr-low"
    else:
        variant = "listed"
    return [Finding("kidney-disease", variant, values, tuple(data), notes=tuple(notes))]


def failing_egfr(picture: PatientPicture, t: Mapping[str, float]) -> LabResult | None:
    """The latest recent eGFR when it is in kidney failure (KDIGO G5, below 15), else None.

    One meaning of kidney failure for every card: the iron card takes the ESRD iron targets
    from it (even without an ESRD or dialysis code), the kidney card its warning variant.
    `t` are the kidney card's thresholds.
    """
    egfr = picture.latest(EGFR, timedelta(days=t["recent_days"]))
    return egfr if egfr is not None and below(egfr, t["egfr_failure_below"]) else None


def kdigo_stage(egfr: float) -> str:
    """KDIGO GFR category of an eGFR in mL/min/1.73 m2."""
    for limit, stage in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if egfr >= limit:
            return stage
    return "G5"


def _persistent(picture: PatientPicture, t: Params) -> bool:
    """Two reduced eGFRs at least 90 days apart, the later one recent."""
    reduced = [r for r in picture.on_record(EGFR) if below(r, t["egfr_below"])]
    if not reduced:
        return False
    newest = max(r.effective for r in reduced)
    return any(newest - r.effective >= CHRONIC for r in reduced)


def _gabapentinoids(picture: PatientPicture) -> list[MedicationFact]:
    return [m for m in picture.medications if set(GABAPENTINOIDS) & m.value_sets]


class GabapentinoidDose:
    """`gabapentinoid-renal-dose`, bound to the label dose tables of the card definition."""

    def __init__(self, dosing: Mapping[str, DrugDosing]):
        self._by_value_set = {drug.value_set: drug for drug in dosing.values()}
        missing = set(GABAPENTINOIDS) - set(self._by_value_set)
        if missing:
            raise ValueError(f"no renal dose table for {sorted(missing)}")

    def check(self, picture: PatientPicture, t: Params) -> list[Finding]:
        kidney = kidney_function(picture, t.window())
        medications = _gabapentinoids(picture)
        if kidney is None or not medications:
            return []
        above: list[tuple[MedicationFact, DrugDosing, DoseBand, float]] = []
        unknown: list[tuple[MedicationFact, DrugDosing, DoseBand]] = []
        avoid: list[tuple[MedicationFact, DrugDosing]] = []
        for medication in medications:
            drug = self._drug(medication)
            band = drug.dialysis if kidney.clearance is None else drug.band(kidney.clearance)
            if band is None:
                avoid.append((medication, drug))
                continue
            dose = daily_dose_mg(medication.dosages, medication.name)
            if dose is None:
                if band is not drug.bands[0]:
                    unknown.append((medication, drug, band))
            elif dose > band.max_daily_mg + 1e-6:
                above.append((medication, drug, band, dose))
        finding = self._finding(kidney, above, unknown, avoid)
        if finding and is_pregnant(picture, t):
            # Gabapentinoids are not advised in pregnancy: no one-click order that keeps one
            # going, whatever the dose.
            return [
                replace(
                    finding[0],
                    targets=(),
                    notes=(
                        "Pregnancy: gabapentinoids are not advised; review it with the "
                        "obstetric team rather than only adjusting the dose.",
                    ),
                )
            ]
        return finding

    def _drug(self, medication: MedicationFact) -> DrugDosing:
        value_set = next(v for v in GABAPENTINOIDS if v in medication.value_sets)
        return self._by_value_set[value_set]

    def _finding(
        self,
        kidney: KidneyFunction,
        above: list[tuple[MedicationFact, DrugDosing, DoseBand, float]],
        unknown: list[tuple[MedicationFact, DrugDosing, DoseBand]],
        avoid: list[tuple[MedicationFact, DrugDosing]],
    ) -> list[Finding]:
        if not (above or unknown or avoid):
            return []
        data: list[DataPoint] = []
        lines: list[str] = []
        for medication, _drug, band, dose in above:
            data.append(medication_point(medication, f"{dose:g} mg/day"))
            lines.append(
                f"{medication.name}: {dose:g} mg/day, label limit {band.max_daily_mg:g} mg/day"
            )
        for medication, _drug, band in unknown:
            data.append(medication_point(medication, "daily dose not readable"))
            lines.append(
                f"{medication.name}: daily dose not readable, "
                f"label limit {band.max_daily_mg:g} mg/day"
            )
        for medication, drug in avoid:
            data.append(medication_point(medication))
            lines.append(f"{medication.name}: {drug.name} is not recommended on haemodialysis")
        data += _kidney_points(kidney)
        if avoid:
            variant = "not-recommended"
            medication, drug = avoid[0]
            values = {"drug": drug.name, "dose": "", "limit": ""}
        elif above:
            variant = "above-limit"
            medication, drug, band, dose = above[0]
            values = {"drug": drug.name, "dose": f"{dose:g}", "limit": f"{band.max_daily_mg:g}"}
        else:
            variant = "dose-unknown"
            medication, drug, band = unknown[0]
            values = {"drug": drug.name, "dose": "", "limit": f"{band.max_daily_mg:g}"}
        values |= {
            "kidney": kidney.describe(),
            "medications": "; ".join(lines),
        }
        adjusted = tuple(
            Target(m.source, m.name, _updated(m, band)) for m, _, band, _ in above if m.is_request
        )
        notes = tuple(
            f"{t.name}: no whole tablet of this strength fits the dose for this kidney "
            "function; choose a lower strength."
            for t in adjusted
            if t.update is None
        )
        # A drug the label does not recommend here can only be cancelled, not adjusted.
        targets = adjusted + tuple(Target(m.source, m.name) for m, _ in avoid if m.is_request)
        return [
            Finding(
                "gabapentinoid-renal-dose",
                variant,
                values,
                tuple(data),
                notes=notes,
                targets=targets,
            )
        ]


def _kidney_points(kidney: KidneyFunction) -> list[DataPoint]:
    if kidney.dialysis is not None:
        return [condition_point(kidney.dialysis)]
    when = kidney.labs[0].effective if kidney.labs else None
    points = [DataPoint("Kidney function for dosing", kidney.describe(), when, "computed")]
    if kidney.method == "Cockcroft-Gault":
        return points + [data_point(lab) for lab in kidney.labs]
    return [data_point(lab) for lab in kidney.labs]


def _updated(medication: MedicationFact, band: DoseBand) -> dict[str, Any] | None:
    """The order with its dosage replaced by a dose inside the band (route kept).

    The dose is the band's suggested dose rounded down to whole tablets of the ordered
    product, so the update can be dispensed as written; ``meta`` is the EHR's and is dropped.
    """
    if medication.raw is None:
        return None
    dose = band.suggested_dose_mg
    strength = product_strength_mg(medication.name)
    if strength is not None:
        if strength > dose:  # no whole tablet of this product fits: the card says so
            return None
        dose = strength * (dose // strength)
    note = band.label_note
    times = band.suggested_times_per_day
    original = medication.raw.get("dosageInstruction")
    route = original[0].get("route") if isinstance(original, list) and original else None
    timing = (
        {"repeat": {"frequency": 1, "period": round(1 / times, 3), "periodUnit": "d"}}
        if times < 1
        else {"repeat": {"frequency": int(times), "period": 1, "periodUnit": "d"}}
    )
    dosage: dict[str, Any] = {
        "text": f"{dose:g} mg {FREQUENCY_WORDS.get(times, f'{times:g} times daily')} ({note})",
        "timing": timing,
        "doseAndRate": [
            {
                "doseQuantity": {
                    "value": dose,
                    "unit": "mg",
                    "system": "http://unitsofmeasure.org",
                    "code": "mg",
                }
            }
        ],
    }
    if isinstance(route, dict):
        dosage["route"] = route
    updated = {key: value for key, value in medication.raw.items() if key != "meta"}
    return {**updated, "dosageInstruction": [dosage]}
