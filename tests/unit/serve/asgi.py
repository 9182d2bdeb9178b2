"""Driving an ASGI app in-process with a hand-made scope: no server, no socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

TCP = ("127.0.0.1", 8765)
UNIX = ("/run/codex-box/serve.sock", None)


def scope(
    method: str = "GET",
    path: str = "/healthz",
    *,
    server: Any = TCP,
    headers: list[tuple[bytes, bytes]] | None = None,
    query: bytes = b"",
    omit_server: bool = False,
) -> dict[str, Any]:
    made: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": server,
    }
    if omit_server:
        del made["server"]
    return made


class Answer:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = next(m for m in messages if m["type"] == "http.response.start")
        self.status: int = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}
        self.body = b"".join(
            m.get("body", b"") for m in messages if m["type"] == "http.response.body"
        )

    def json(self) -> Any:
        return json.loads(self.body)


async def _call(app: Any, made: dict[str, Any], body: bytes) -> Answer:
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the app answers
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await asyncio.wait_for(app(made, receive, send), timeout=10)
    return Answer(messages)


def call(app: Any, made: dict[str, Any], body: Any = None) -> Answer:
    """One request; ``body`` a dict is sent as JSON."""
    data = b"" if body is None else json.dumps(body).encode()
    if body is not None:
        made = {**made, "headers": [*made["headers"], (b"content-type", b"application/json")]}
    return asyncio.run(_call(app, made, data))
