"""CDS Hooks 2.0 on the wire: request models, the services we advertise, fixture requests."""
