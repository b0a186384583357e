"""Requests gunicorn refuses before an application sees them still get problem+json.

A request line too long (414), headers too large (431) and a request line
that is no HTTP at all (400) are answered by the server itself; a client
must be able to read them like every other refusal, from either service.
"""

import socket

import pytest

from tests.faults.raw_http import connect, read_answer, send
from tests.support.problems import assert_problem
from tests.support.stacks import Stack

SERVICES = ["api", "geo"]


@pytest.mark.parametrize("service", SERVICES)
def test_a_request_line_over_the_limit_is_414_problem(stack: Stack, service: str):
    answer = send(stack.url(service), "GET", "/healthz?pad=" + "a" * 9000)

    assert_problem(answer, 414, detail="request line")


@pytest.mark.parametrize("service", SERVICES)
def test_a_header_over_the_limit_is_431_problem(stack: Stack, service: str):
    answer = send(stack.url(service), "GET", "/healthz", {"X-Pad": "a" * 10_000})

    assert_problem(answer, 431, detail="header")


@pytest.mark.parametrize("service", SERVICES)
def test_too_many_headers_are_431_problem(stack: Stack, service: str):
    headers = {f"X-Pad-{n}": "a" for n in range(150)}

    assert_problem(send(stack.url(service), "GET", "/healthz", headers), 431, detail="header")


@pytest.mark.parametrize("service", SERVICES)
def test_a_request_line_that_is_not_http_is_400_problem(stack: Stack, service: str):
    with connect(stack.url(service), 10.0) as sock:
        sock.sendall(b"NOT AN HTTP REQUEST LINE\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = read_answer(sock)

    assert_problem(answer, 400, detail="invalid")
