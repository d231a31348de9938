"""`python -m cds_service` runs the same command line as `rls-cds`."""

from cds_service.cli import main

raise SystemExit(main())
