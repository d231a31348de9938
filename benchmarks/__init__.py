"""Benchmarks that print ratios measured in one run (``python -m benchmarks``, ``make bench``).

These machines are shared and noisy, so every figure is a ratio against a reference measured
in the same run: the hook against ``json.loads`` of its own body (P1), against one FHIR query
(P2), against ``/healthz`` on the same server (P3); P4 reports memory and start-up time.
"""
