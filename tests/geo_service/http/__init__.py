"""The geo service's routes under Flask's test client; the fixtures are in ``conftest.py``."""

SECRET = "geo-test-secret"
# The largest upload the test app takes: small, so a test can go over it cheaply.
MAX_SIZE = 1024**2
