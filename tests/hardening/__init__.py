"""Hardening: damaged resources, hostile requests and FHIR server faults (issue 10)."""
