"""How much one request may make the server hold: the body, before anything reads it.

Owns: refusing a body over ``MAX_BODY`` with a 413 problem — at once when its
Content-Length says so, else (chunked) as soon as the bytes received pass it — so a
request can never make the server buffer more than that. Does not own: the fields'
own bounds (``models``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from orchestrator.core.errors import EXIT_USAGE

from .problems import BASE, MEDIA_TYPE

MAX_BODY = 20 * 1024 * 1024  # stdin's 16 MiB, JSON-escaped, and the rest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyLimit:
    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > MAX_BODY):
                await _refuse(send)
                return
        seen = 0
        started = refused = False

        async def counted() -> Message:
            # Past the limit: the 413 is sent here, at once (the app would turn any
            # error of its body reading into a 400), and the app sees its client leave.
            nonlocal seen, started, refused
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY and not refused:
                    refused = True
                    if not started:
                        started = True
                        await _refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer
            started = started or message.get("type") == "http.response.start"
            await send(message)

        await self.app(scope, counted, watched)


async def _refuse(send: Send) -> None:
    body = json.dumps(
        {
            "type": BASE + "too-large",
            "title": "too large",
            "status": 413,
            "detail": f"the request body is over {MAX_BODY} bytes",
            "exit_code": EXIT_USAGE,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
