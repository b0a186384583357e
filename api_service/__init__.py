"""The public REST API: validates uploads, relays them to the geo service, enqueues jobs."""
