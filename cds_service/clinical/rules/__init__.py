"""One module per cause; each exposes pure ``check`` functions: PatientPicture -> Findings."""
