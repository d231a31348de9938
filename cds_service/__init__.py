"""rls-cds: a CDS Hooks 2.0 service for secondary and vascular causes of Restless Legs Syndrome."""

#: The release, written here only: the package metadata, `rls-cds --version`, the discovery
#: document and the image label take it from here (CHANGELOG.md names the same).
__version__ = "0.1.0"
