"""Pieces shared by the API, the geo service and the sweeper."""
