"""A debug logger that costs nothing until debugging is switched on.

Owns: the ``debug()`` call library modules use to log exact argv/kwargs.
Does not own: configuring loguru — ``cli`` does that via ``enable()``.

Why not ``from loguru import logger`` everywhere: importing loguru costs 50-110 ms
here (it imports asyncio), and the sandbox's hot path must not pay for logging it
does not do. Library code calls ``debug()``; loguru is imported only once the CLI
has turned debugging on.
"""

from __future__ import annotations

from typing import Any

_enabled = False


def enable() -> None:
    global _enabled
    _enabled = True


def debug(message: str, /, **fields: Any) -> None:
    if not _enabled:
        return
    from loguru import logger

    # Fields go through loguru's formatting as an argument: a "{extra}" placeholder in
    # the message itself is printed literally, and braces in values must stay inert.
    if fields:
        logger.opt(depth=1).debug("{} {}", message, fields)
    else:
        logger.opt(depth=1).debug("{}", message)
