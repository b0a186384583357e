"""Helpers the tests share: a running stack, request bodies, files, stand-ins for peers."""
