"""The credential broker (``netproxy.broker``) against requests the sandbox shapes at
will: placeholders anywhere in the target and headers, plain or base64 (as a Basic
password, or not), any host and port, over TLS or not.

The property: the real value appears in what goes upstream only over TLS, to a bound
host and port, in a header the secret is injected into — and then the placeholder is
gone from that header; anywhere else the request is refused (Leak), and a refusal's
words never hold the value. A body or a response with the placeholder or the value
split at any point is caught."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.brokered import BrokeredSecret
from orchestrator.netproxy import http
from orchestrator.netproxy.broker import Broker, Leak

from .conftest import fuzz

PLACE = "ghp_" + "p" * 36
REAL = "REAL" + "v" * 36
BOUND = ("api.bound.test", 443)
SECRET = BrokeredSecret(name="T", hosts=("api.bound.test",), inject=("header", "basic-auth"),
                        placeholder=PLACE)  # fmt: skip
ONLY_BASIC = BrokeredSecret(name="B", hosts=("api.bound.test",), inject=("basic-auth",),
                            placeholder="cbx_" + "b" * 40)  # fmt: skip
VALUES = {"T": REAL, "B": "BASIC" + "w" * 35}

fragments = st.sampled_from(["", "x", " ", "token ", "Bearer ", PLACE, PLACE[:10], "%67hp_",
                             "cbx_" + "b" * 40, ":", "=", "a-b"])  # fmt: skip
values = st.lists(fragments, max_size=5).map("".join)
basic_values = st.tuples(values, values).map(
    lambda up: "Basic " + base64.b64encode(f"{up[0]}:{up[1]}".encode()).decode()
)
names = st.sampled_from(["Authorization", "X-Api-Key", "Cookie", "User-Agent", "X-T"])
headers = st.lists(st.tuples(names, values | basic_values), max_size=4)
targets = st.lists(fragments, max_size=3).map(lambda parts: "/" + "".join(parts).replace(" ", ""))
hosts = st.sampled_from([BOUND, ("api.bound.test", 80), ("evil.test", 443), ("bound.test", 443)])


def build(target: str, pairs: list[tuple[str, str]]) -> http.RequestHead:
    lines = [f"GET {target or '/'} HTTP/1.1", *(f"{k}: {v}" for k, v in pairs)]
    return http.parse_request(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))


@fuzz("broker")
@given(target=targets, pairs=headers, where=hosts, tls=st.booleans())
def test_the_value_goes_only_where_it_is_bound(target, pairs, where, tls) -> None:
    broker = Broker((SECRET, ONLY_BASIC), VALUES)
    host, port = where
    try:
        req = build(target, pairs)
    except http.BadRequest:
        return
    try:
        out, sent = broker.rewrite(req, host, port, tls=tls)
    except Leak as leak:
        assert not any(v in leak.reason for v in VALUES.values())
        return
    text = "\n".join(v for _, v in out.headers) + out.target
    decoded = "".join(
        base64.b64decode(v[6:]).decode("latin-1", "replace")
        for n, v in out.headers
        if n.lower() == "authorization" and v.startswith("Basic ") and len(v) > 6
    )
    injected = REAL in text or REAL in decoded or VALUES["B"] in decoded
    if injected:
        # A pattern without a port admits 80 and 443; over TLS either is the verified origin.
        assert tls and host == BOUND[0] and port in (80, 443) and sent
    assert PLACE not in text and PLACE not in decoded  # nothing left unreplaced or unrefused
    assert "cbx_" + "b" * 40 not in text + decoded


@fuzz("broker")
@given(cut=st.integers(0, 60), before=st.binary(max_size=30), after=st.binary(max_size=30))
def test_a_split_placeholder_or_value_is_still_caught(cut, before, after) -> None:
    broker = Broker((SECRET,), VALUES)
    data = before + PLACE.encode() + after
    scan = broker.body_scanner("api.bound.test")
    caught = False
    try:
        scan(data[: cut % (len(data) + 1)])
        scan(data[cut % (len(data) + 1) :])
    except Leak:
        caught = True
    assert caught
    guard = broker.response_guard({"T": {REAL.encode()}}, "api.bound.test")
    reply = before + REAL.encode() + after
    out, cut_off = b"", False
    split = cut % (len(reply) + 1)
    try:
        out += guard.feed(reply[:split])
        out += guard.feed(reply[split:])
        out += guard.flush()
    except Leak:
        cut_off = True
    # Cut off, and not one byte of the value had gone out: only what came before it.
    assert cut_off and reply.startswith(out) and len(out) <= len(before)
