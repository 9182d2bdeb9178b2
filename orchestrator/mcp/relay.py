"""The relay of ``codex-box mcp wrap``: stdio MCP (newline-delimited JSON-RPC) between an
agent and a wrapped server, unchanged but for the tool lists.

Owns: which tools a server may be asked to run (``ToolFilter``: allow and deny lists of
names or ``fnmatch`` patterns, from the flags and the profile, the narrowest of them),
each line's fate — a ``tools/call`` of a refused tool answered here with a JSON-RPC
error and never forwarded; the response to a ``tools/list`` the client asked for with
its refused tools left out; everything else forwarded byte for byte — but a line that
is not one JSON value (or a batch of objects) is answered with a parse error and never
forwarded (a server might read it as two messages) — and telling its caller of each call
and the error flag of its answer (``Calls``), for the audit. A line is judged as the
most lenient reader would take it (invalid UTF-8 replaced, a BOM dropped), so no call
the relay cannot read reaches a server that can; a server whose parser accepts what is
not JSON at all (comments, trailing commas) is not covered.
Does not own: pipes, threads or the sandbox (``wrap``), the records (``audit.records``).
Pure: no I/O; thread-safe (one thread per direction calls it).

Batches (JSON arrays, JSON-RPC 2.0; MCP since 2025-06-18 sends none): each element is
judged alone; a batch with a refused call is forwarded without it (re-serialised), and
the refusals answered in an array of their own.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

MAX_LINE = 16 * 1024 * 1024  # one message; a longer line ends the relay
REFUSED_CODE = -32602  # invalid params: what MCP answers for a tool it does not have


class Calls(Protocol):
    """Told of each ``tools/call`` (before it is forwarded or refused) and its answer."""

    def called(self, key: str, name: str, arguments: Any, *, allowed: bool, why: str) -> None: ...

    def answered(self, key: str, *, is_error: bool) -> None: ...


@dataclass(frozen=True)
class ToolFilter:
    """Each allow list that is given must admit a tool, and no deny list may name it."""

    allows: tuple[tuple[str, ...], ...] = ()
    denies: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, allow_lists: Iterable[Sequence[str]], deny_lists: Iterable[Sequence[str]]
    ) -> ToolFilter:
        """Empty allow lists (none given) admit every tool; the deny lists add up."""
        return cls(
            allows=tuple(tuple(a) for a in allow_lists if a),
            denies=tuple(p for d in deny_lists for p in d),
        )

    def refusal(self, name: str) -> str | None:
        """Why ``name`` is refused, or None when it may run."""
        for pattern in self.denies:
            if fnmatch.fnmatchcase(name, pattern):
                return f"denied ({pattern})"
        for allowed in self.allows:
            if not any(fnmatch.fnmatchcase(name, p) for p in allowed):
                return f"not in the allowed tools ({', '.join(allowed)})"
        return None


_DROP: dict[str, Any] = {}  # a refused notification: neither forwarded nor answered


def key_of(request_id: Any) -> str:
    """A request id as a key: 1 and "1" are different ids."""
    return json.dumps(request_id, sort_keys=True)


def _dumps(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _refused(request_id: Any, name: str, why: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": REFUSED_CODE,
            "message": f"tool {name!r} is refused by codex-box: {why}",
        },
    }


@dataclass
class Relay:
    tools: ToolFilter
    calls: Calls | None = None
    _lists: set[str] = field(default_factory=set)  # tools/list requests in flight
    _calls: set[str] = field(default_factory=set)  # tools/call requests in flight
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- client → server --------------------------------------------------------------

    def from_client(self, line: bytes) -> tuple[bytes | None, bytes | None]:
        """(what goes to the server, what goes back to the client) for one line."""
        if not line.strip():
            return None, None  # nothing to judge, nothing to forward
        message = _parse(line)
        # A line the relay cannot read as ONE JSON value is never forwarded: a server may
        # read it otherwise (a bare CR ends a line for Python's universal newlines, a
        # streaming decoder reads two objects on one line) — a denied call inside it
        # would run. Nor a batch holding anything but objects (a nested batch).
        batch = isinstance(message, list) and bool(message)
        if not isinstance(message, dict) and not (
            batch and all(isinstance(m, dict) for m in message)
        ):
            return None, _dumps(_not_one_message())
        # Forwarded as read: re-serialised when a CR inside could split it for the server.
        same = line if b"\r" not in line.rstrip(b"\r\n") else _dumps(message)
        if isinstance(message, dict):
            fate = self._request(message)
            if fate is None:
                return same, None
            return None, (None if fate is _DROP else _dumps(fate))
        fates = [self._request(m) for m in message]
        if all(f is None for f in fates):
            return same, None
        rest = [m for m, f in zip(message, fates, strict=True) if f is None]
        answers = [f for f in fates if f is not None and f is not _DROP]
        return (_dumps(rest) if rest else None), (_dumps(answers) if answers else None)

    def _name_refusal(self, message: dict[str, Any]) -> tuple[str, str] | None:
        """(the tool's name, why it is refused), or None when it may run (or names no
        tool: the server's to refuse)."""
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str):
            return None
        why = self.tools.refusal(name)
        return None if why is None else (name, why)

    def _request(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The refusal to answer ``message`` with, or None to forward it."""
        method = message.get("method")
        if "id" not in message or method not in ("tools/list", "tools/call"):
            refused = self._name_refusal(message) if method == "tools/call" else None
            if refused is None:
                return None
            if self.calls is not None:  # a notification: nobody to answer, never forwarded
                arguments = message["params"].get("arguments")
                self.calls.called("null", refused[0], arguments, allowed=False, why=refused[1])
            return _DROP
        key = key_of(message["id"])
        if method == "tools/list":
            with self._lock:
                self._lists.add(key)
            return None
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        name = params.get("name")
        if not isinstance(name, str):
            return None
        why = self.tools.refusal(name)
        if self.calls is not None:
            self.calls.called(
                key, name, params.get("arguments"), allowed=why is None, why=why or "allowed"
            )
        if why is None:
            with self._lock:
                self._calls.add(key)
            return None
        return _refused(message["id"], name, why)

    # --- server → client --------------------------------------------------------------

    def from_server(self, line: bytes) -> bytes:
        """What goes to the client for one line of the server's."""
        message = _parse(line)
        if isinstance(message, dict):
            changed = self._response(message)
            return line if changed is None else _dumps(changed)
        if isinstance(message, list):
            out, any_changed = [], False
            for m in message:
                changed = self._response(m) if isinstance(m, dict) else None
                any_changed |= changed is not None
                out.append(m if changed is None else changed)
            return _dumps(out) if any_changed else line
        return line

    def _response(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """``message`` with its tool list filtered, or None when it stays as it was."""
        if "method" in message or "id" not in message:
            return None  # a request or notification of the server's
        key = key_of(message["id"])
        with self._lock:
            listed = key in self._lists
            called = key in self._calls
            self._lists.discard(key)
            self._calls.discard(key)
        result = message.get("result")
        if called and self.calls is not None:
            is_error = "error" in message or (
                isinstance(result, dict) and result.get("isError") is True
            )
            self.calls.answered(key, is_error=is_error)
        if not listed or not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return None
        tools = result["tools"]
        kept = [
            t
            for t in tools
            if isinstance(t, dict)
            and isinstance(t.get("name"), str)
            and self.tools.refusal(t["name"]) is None
        ]
        if len(kept) == len(tools):
            return None
        return {**message, "result": {**result, "tools": kept}}

    def unanswered(self) -> list[str]:
        """The calls forwarded whose answer never came (the server ended)."""
        with self._lock:
            left = sorted(self._calls)
            self._calls.clear()
        return left


def _not_one_message() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": "codex-box: not one JSON-RPC message; not forwarded"},
    }


def _parse(line: bytes) -> Any:
    """The message, or None for a line that is not JSON. A line that is not valid UTF-8
    is read the way a lenient server would (bad bytes replaced): a call the relay could
    not read must not reach a server that can."""
    try:
        return json.loads(line)
    except RecursionError:  # too deep for us, and for any server's parser
        return None
    except ValueError:
        pass
    try:
        return json.loads(line.decode("utf-8", "replace").lstrip("\ufeff"))
    except (ValueError, RecursionError):  # not JSON: forwarded as it is
        return None
