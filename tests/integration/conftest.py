"""Integration fixtures: one real FHIR server (Medplum sandbox) shared by every module."""

from tests.integration.fhir_sandbox import fhir_server  # noqa: F401
