"""The geo service's HTTP resources: multipart uploads, tus, and one map of errors to problems."""

import logging

#: The one logger of the geo service's requests, whichever resource answers them.
log = logging.getLogger("handoff.geo")
