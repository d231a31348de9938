"""rls-cds: a CDS Hooks 2.0 service for secondary and vascular causes of Restless Legs Syndrome."""

__version__ = "0.1.0"
