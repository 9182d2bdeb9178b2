"""The relay of ``codex-box mcp wrap``, without a sandbox: refused calls answered and
never forwarded, tool lists filtered, everything else byte for byte, malformed lines,
batches, and what the audit is told."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.mcp.relay import REFUSED_CODE, Relay, ToolFilter, key_of


class Seen:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, bool, str]] = []
        self.answers: list[tuple[str, bool]] = []

    def called(self, key: str, name: str, arguments: Any, *, allowed: bool, why: str) -> None:
        self.calls.append((key, name, arguments, allowed, why))

    def answered(self, key: str, *, is_error: bool) -> None:
        self.answers.append((key, is_error))


def line(message: Any) -> bytes:
    return json.dumps(message).encode() + b"\n"


def call(request_id: Any, name: Any, arguments: Any = None) -> dict[str, Any]:
    params = {"name": name, **({"arguments": arguments} if arguments is not None else {})}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def tools_result(request_id: Any, *names: str) -> dict[str, Any]:
    tools = [{"name": n, "inputSchema": {"type": "object"}} for n in names]
    return {"jsonrpc": "2.0", "id": request_id, "result": {"tools": tools, "nextCursor": "x"}}


def relay(allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> tuple[Relay, Seen]:
    seen = Seen()
    return Relay(ToolFilter.of([allow], [deny]), seen), seen


@pytest.mark.parametrize(
    ("allows", "denies", "name", "refused"),
    [
        ((), (), "anything", False),
        ((("read_*", "search"),), (), "read_file", False),
        ((("read_*", "search"),), (), "write_file", True),
        ((("read_*", "search"),), ("read_secret",), "read_secret", True),  # deny wins
        ((("read_*",), ("read_file", "x")), (), "read_dir", True),  # both lists must admit
        ((("read_*",), ("read_file", "x")), (), "read_file", False),
        ((), ("*",), "search", True),
        ((), ("Search",), "search", False),  # case matters
    ],
)
def test_the_filter_is_the_narrowest_of_its_lists(
    allows: tuple[tuple[str, ...], ...], denies: tuple[str, ...], name: str, refused: bool
) -> None:
    tools = ToolFilter.of(allows, [denies])
    assert (tools.refusal(name) is not None) is refused


def test_a_refused_call_is_answered_with_an_error_and_never_forwarded() -> None:
    r, seen = relay(deny=("delete",))
    forward, answer = r.from_client(line(call("abc", "delete", {"path": "/"})))
    assert forward is None and answer is not None
    error = json.loads(answer)
    assert error["id"] == "abc" and error["error"]["code"] == REFUSED_CODE
    assert "'delete' is refused by codex-box: denied (delete)" in error["error"]["message"]
    assert seen.calls == [(key_of("abc"), "delete", {"path": "/"}, False, "denied (delete)")]
    assert r.unanswered() == []  # nothing in flight: the server never saw it


def test_an_allowed_call_goes_byte_for_byte_and_its_error_flag_is_reported() -> None:
    r, seen = relay(allow=("search",))
    raw = b'{"jsonrpc": "2.0",  "id": 7, "method": "tools/call", "params": {"name": "search"}}\n'
    assert r.from_client(raw) == (raw, None)
    assert seen.calls == [("7", "search", None, True, "allowed")]
    answer = b'{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}\n'
    assert r.from_server(answer) == answer
    assert seen.answers == [("7", True)]
    r.from_client(line(call(8, "search")))
    r.from_server(line({"jsonrpc": "2.0", "id": 8, "error": {"code": -1, "message": "x"}}))
    r.from_client(line(call(9, "search")))
    r.from_server(line({"jsonrpc": "2.0", "id": 9, "result": {"content": []}}))
    assert seen.answers[1:] == [("8", True), ("9", False)]


def test_tools_list_answers_are_filtered_and_only_those_the_client_asked_for() -> None:
    r, _ = relay(deny=("delete_*",))
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    assert r.from_client(line(listing)) == (line(listing), None)
    filtered = json.loads(r.from_server(line(tools_result(1, "search", "delete_all", "read"))))
    assert [t["name"] for t in filtered["result"]["tools"]] == ["search", "read"]
    assert filtered["result"]["nextCursor"] == "x" and filtered["id"] == 1
    # Not a response to a tools/list we saw (id 2), or already answered (id 1): unchanged.
    for request_id in (2, 1):
        raw = line(tools_result(request_id, "delete_all"))
        assert r.from_server(raw) == raw
    # Nothing to remove: byte for byte, even when asked for.
    r.from_client(line({**listing, "id": "s"}))
    raw = b'{"id": "s", "jsonrpc": "2.0", "result": {"tools": [{"name": "read"}]}}\n'
    assert r.from_server(raw) == raw


def test_ids_of_different_types_are_different_requests() -> None:
    r, _ = relay(deny=("x",))
    r.from_client(line({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
    raw = line(tools_result("1", "x"))
    assert r.from_server(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call"}\n',  # no params: the server's to judge
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1]}\n',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n',
        b'{"jsonrpc":"2.0","id":3,"result":{}}\n',  # the client's answer to the server
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}}',  # last line
    ],
)
def test_anything_else_from_the_client_is_forwarded_unchanged(raw: bytes) -> None:
    r, _ = relay(deny=("bad",))
    assert r.from_client(raw) == (raw, None)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json\n",
        b"\xff\xfe\n",
        b"[" * 100_000 + b"]" * 100_000 + b"\n",  # too deep for json: not judged
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bad"}',  # cut off
        b"[]\n",
        b"42\n",
        b'[[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bad"}}]]\n',
        b'{"jsonrpc":"2.0","id":1}\r{"jsonrpc":"2.0","id":2}\n',  # two messages to a server
    ],
)
def test_a_line_that_is_not_one_message_is_answered_never_forwarded(raw: bytes) -> None:
    """A server might read such a line as two messages (a bare CR, a streaming decoder):
    a denied call inside it would run. It is answered with a parse error instead."""
    r, _ = relay(deny=("bad",))
    forward, answer = r.from_client(raw)
    assert forward is None and answer is not None
    assert json.loads(answer)["error"]["code"] == -32700
    assert r.from_client(b"\n") == (None, None)  # a blank line: nothing at all


@pytest.mark.parametrize(
    "raw",
    [
        b"garbage\n",
        b'{"jsonrpc":"2.0","id":1,"method":"sampling/createMessage","params":{}}\n',
        b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n',
        b'{"jsonrpc":"2.0","id":99,"result":{"tools":[{"name":"bad"}]}}\n',
        b"[1, 2]\n",
    ],
)
def test_anything_else_from_the_server_is_forwarded_unchanged(raw: bytes) -> None:
    r, _ = relay(deny=("bad",))
    assert r.from_server(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bad","x":"\xff"}}\n',
        b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bad"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools\\/call","params":{"name":"b\\u0061d"}}\n',
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok","name":"bad"}}\n',
    ],
)
def test_a_refused_call_a_lenient_server_would_read_is_refused(raw: bytes) -> None:
    r, _ = relay(deny=("bad",))
    forward, answer = r.from_client(raw)
    assert forward is None and answer is not None and json.loads(answer)["id"] == 1


def test_a_refused_notification_call_is_dropped() -> None:
    r, seen = relay(deny=("bad",))
    notification = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "bad"}}
    assert r.from_client(line(notification)) == (None, None)
    assert seen.calls == [("null", "bad", None, False, "denied (bad)")]


def test_a_batch_is_forwarded_without_its_refused_calls_which_are_answered_here() -> None:
    r, seen = relay(deny=("bad",))
    batch = [
        call(1, "bad"),
        call(2, "good"),
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
    ]
    forward, answer = r.from_client(line(batch))
    assert forward is not None and answer is not None
    assert json.loads(forward) == batch[1:]
    assert [a["id"] for a in json.loads(answer)] == [1]
    assert [(c[1], c[3]) for c in seen.calls] == [("bad", False), ("good", True)]
    clean = line([call(4, "good")])
    assert r.from_client(clean) == (clean, None)
    only_refused = r.from_client(line([call(5, "bad")]))
    assert only_refused[0] is None and json.loads(only_refused[1] or b"")[0]["id"] == 5
    # The server's batch answer: the tools/list filtered, the call's flag reported.
    answers = [
        tools_result(3, "bad", "good"),
        {"jsonrpc": "2.0", "id": 2, "result": {"content": [], "isError": False}},
    ]
    out = json.loads(r.from_server(line(answers)))
    assert [t["name"] for t in out[0]["result"]["tools"]] == ["good"]
    assert out[1] == answers[1]
    assert ("2", False) in seen.answers
    assert r.unanswered() == ["4"]


def test_lines_keep_their_newline_and_a_line_past_the_cap_ends_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from orchestrator.mcp import wrap

    monkeypatch.setattr(wrap, "MAX_LINE", 8)
    assert list(wrap.lines(io.BytesIO(b"12345678\nab\nlast"))) == [b"12345678\n", b"ab\n", b"last"]
    with pytest.raises(wrap.TooLong):
        list(wrap.lines(io.BytesIO(b"ok\n123456789\n")))
