"""Talking to the EHR's FHIR server: the URL guard, the REST client and parallel gathering."""
