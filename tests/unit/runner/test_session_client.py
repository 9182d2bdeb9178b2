"""The exec client against a keeper that refuses it: the keeper answers and closes
without reading the request (a client inside a sandbox, another uid). The client's send
then breaks; what it reports must be the keeper's reason and exit code — a CI flake once
showed a silent exit 1 (BrokenPipeError) instead."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.runner.sessions import client, locate, store
from orchestrator.sandbox.linux import wire

SID = "bbbbbbbbbbbb"
REFUSAL = {"event": "error", "message": "a client inside a sandbox may not use this session",
           "hint": "run it from the host", "exit_code": 126}
# Bigger than any socket buffer: the client is still sending when the keeper closes.
BIG = "x" * (2 * 1024 * 1024)


@pytest.fixture
def refusing_keeper() -> Iterator[Path]:
    # Not tmp_path: /tmp/pytest-of-USER/... grows with the login name, and for a longer
    # one than root (the non-root CI leg's codexci) the socket's path passed the 108
    # bytes a unix socket address holds.
    home = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    store.make_directory(home, SID)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(store.directory(home, SID) / locate.SOCKET))
    listener.listen(1)

    def refuse() -> None:
        peer, _ = listener.accept()
        with peer:
            wire.send(peer, REFUSAL)  # and close, the request unread

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    yield home
    thread.join(timeout=10)
    listener.close()
    shutil.rmtree(home, ignore_errors=True)


def test_an_exec_the_keeper_refuses_unread_reports_the_keepers_reason(
    refusing_keeper: Path,
) -> None:
    with pytest.raises(client.SessionError) as raised:
        client.execute(refusing_keeper, SID, {"op": "exec", "argv": ["true"],
                                              "environ": {"BIG": BIG}})
    assert raised.value.message == REFUSAL["message"]
    assert raised.value.exit_code == 126


def test_a_request_the_keeper_refuses_unread_reports_the_keepers_reason(
    refusing_keeper: Path,
) -> None:
    with pytest.raises(client.SessionError) as raised:
        client.request(refusing_keeper, SID, {"op": "info", "padding": BIG})
    assert raised.value.message == REFUSAL["message"]
