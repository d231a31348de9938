"""The clinical domain: pure functions from FHIR data to findings. No Flask, requests or SQL."""
