"""What both web services run on: gunicorn's settings, the request body, health, logs, metrics.

Installed with the services (the ``server`` extra); the client needs none of it.
"""
