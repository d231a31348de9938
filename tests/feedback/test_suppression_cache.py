"""Issue 20: a worker remembers for RLS_CDS_SUPPRESSION_CACHE_S that nothing is suppressed for
a patient, so that most hooks never ask the store; feedback stored through the same worker
ends that at once, another worker sees it at most the cache time later (showing a card again
for those seconds is safe); an answer that hides something is never remembered."""

from __future__ import annotations

from sqlalchemy import event

from tests.feedback.test_suppression import ANTIHISTAMINE, BOTH, IRON, override, patient_view


def suppression_reads(app) -> list[str]:
    """The suppression-table reads the app's engine makes from now on."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if "FROM suppression" in statement and statement.lstrip().startswith("SELECT"):
            seen.append(statement)

    event.listen(app.extensions["rls_cds"].database, "before_cursor_execute", count)
    return seen


def test_a_patient_with_nothing_suppressed_is_read_once_per_cache_time(make_app):
    app = make_app(suppression_cache_s=300)
    client = app.test_client()
    reads = suppression_reads(app)
    for _ in range(3):
        assert set(patient_view(client)) == BOTH
    assert len(reads) == 1


def test_feedback_through_the_same_worker_hides_the_card_at_once(make_app):
    app = make_app(suppression_cache_s=300)
    client = app.test_client()
    cards = patient_view(client)  # remembered: nothing suppressed
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    assert set(patient_view(client)) == {IRON}


def test_an_answer_that_hides_a_card_is_always_read_again(make_app):
    app = make_app(suppression_cache_s=300)
    client = app.test_client()
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "patient-declined")
    reads = suppression_reads(app)
    for _ in range(2):
        assert set(patient_view(client)) == {IRON}
    assert len(reads) == 2


def test_another_worker_sees_the_feedback_within_its_cache_time(make_app):
    worker = make_app(suppression_cache_s=300)
    uncached = make_app(suppression_cache_s=0)
    other = make_app()
    cards = patient_view(other.test_client())
    assert set(patient_view(worker.test_client())) == BOTH  # remembered here
    assert set(patient_view(uncached.test_client())) == BOTH
    override(other, other.test_client(), cards[ANTIHISTAMINE], "already-addressed")
    assert set(patient_view(uncached.test_client())) == {IRON}
    # Stale for at most the cache time, and only in the safe direction: the card shows.
    assert set(patient_view(worker.test_client())) == BOTH


def test_overrides_that_suppress_nothing_are_remembered_as_nothing(make_app):
    """A patient with history (here an override as not clinically relevant) is remembered as
    readily as a new one: what counts is that nothing is suppressed."""
    app = make_app(suppression_cache_s=300)
    client = app.test_client()
    cards = patient_view(client)
    override(app, client, cards[ANTIHISTAMINE], "not-clinically-relevant")
    reads = suppression_reads(app)
    for _ in range(3):
        assert set(patient_view(client)) == BOTH
    assert len(reads) == 1
