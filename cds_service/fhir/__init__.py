"""Talking to the EHR's FHIR server: the REST client and parallel gathering (URLs: outbound)."""
