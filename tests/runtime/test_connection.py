"""Reaching Temporal: the cheap probe an offline command uses before it connects."""

from __future__ import annotations

import socket

from runtime.connection import answers


def test_answers_when_something_listens_and_not_when_nothing_does() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert answers(f"127.0.0.1:{port}")
    assert not answers(f"127.0.0.1:{port}")  # closed now


def test_an_address_that_is_not_host_port_is_left_to_connect() -> None:
    assert answers("no-port-here")
