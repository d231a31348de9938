"""P1: server-side processing of a large patient-view, in-process, against json.loads."""

from __future__ import annotations

import gc
import json
import tempfile
from pathlib import Path

from benchmarks import data
from benchmarks.report import Result, median_ratio
from cds_service.app import create_app
from cds_service.clinical.coding import value_set_index
from cds_service.settings import Settings

TARGET = 3.0
URL = "/cds-services/rls-secondary-causes"


def run(rounds: int = 15, count: int = 20) -> list[Result]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(demo=True, log_level="ERROR", data_dir=Path(tmp))
        app = create_app(settings, clock=lambda: data.NOW)
        client = app.test_client()
        runtime = app.extensions["rls_cds"]
        recorder = runtime.feedback.recorder
        index = value_set_index(runtime.knowledge.value_sets)
        body = data.large_body()
        cards = _check(client, body)

        def hook() -> None:
            response = client.post(URL, data=body, content_type="application/json")
            assert response.status_code == 200

        def cold() -> None:
            index.forget()
            hook()

        for _ in range(20):
            hook()
        recorder.flush()
        gc.collect()
        gc.freeze()  # as the production server does once a worker has started
        loads = lambda: json.loads(body)  # noqa: E731
        ratio, hook_s, loads_s = median_ratio(hook, loads, rounds, count, recorder.flush)
        cold_ratio, cold_s, _ = median_ratio(cold, loads, rounds, count, recorder.flush)
        gc.unfreeze()
    size = f"{len(body) / 1024:.0f} KiB"
    return [
        Result(
            "P1",
            "patient-view, 300 Obs + 50 MedReq + 50 Cond, vs json.loads",
            f"{ratio:.2f}x ({hook_s * 1000:.1f} ms vs {loads_s * 1000:.1f} ms)",
            f"<= {TARGET:.0f}x",
            ratio <= TARGET,
            [
                f"A {size} request (resources sized like Synthea's, median about 730 bytes),",
                "posted through the Flask test client until its answer is back: parsing,",
                "validation, reading, rules, the feedback store's suppression query, cards",
                f"({cards}) and the JSON answer, while the card index is written by the",
                "background recorder (SQLite file, the default store; it competes for the",
                "interpreter lock). Against json.loads of the same bytes. Median of",
                f"{rounds} rounds of {count} calls. The process freezes its start-up objects",
                "out of the garbage collector, as the gunicorn config does.",
            ],
        ),
        Result(
            "P1c",
            "the same, terminology lookups not remembered",
            f"{cold_ratio:.2f}x ({cold_s * 1000:.1f} ms)",
            "(contrast)",
            None,
            [
                "As P1, with the value-set index's memory of earlier lookups cleared before",
                "every call: the cost of a record whose codes and drug names the worker has",
                "never seen.",
            ],
        ),
    ]


def _check(client: object, body: bytes) -> int:
    response = client.post(URL, data=body, content_type="application/json")  # type: ignore[attr-defined]
    assert response.status_code == 200, response.get_data(as_text=True)
    found = response.get_json()["cards"]
    assert found, "the benchmark record should give cards"
    return len(found)
