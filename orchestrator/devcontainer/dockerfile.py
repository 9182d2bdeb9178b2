"""What a devcontainer's Dockerfile would make the engine fetch, read as the engine reads it.

Owns: the Dockerfile's logical lines (parser directives, the escape character, comments,
line continuations), ``fetches`` — ``ADD`` of a URL or a git repository (also under
``ONBUILD``), which the engine itself downloads on the host's network, whatever network
the build's ``RUN`` steps get — and ``images``: every image a build starts from or copies
from (``FROM``, ``COPY --from``), with ``ARG`` defaults and build args filled in, stage
names left out. ``build`` refuses a build that would fetch without the profile's network,
or that names an image the engine would pull. Does not own: building (``build``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VARIABLE = re.compile(rf"\$(?:\{{({_NAME})(?::?([-+])([^}}]*))?\}}|({_NAME}))")
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git@|[^/\s]+\.git(?:#|$))")
# BuildKit's own separators: an instruction splits from its arguments here, and only here
# (a no-break space is not one; a tab is).
_WHITESPACE = re.compile(r"[\t\v\f\r ]+")


def _lines(text: str) -> list[str]:
    """As BuildKit reads the file: a BOM dropped, lines split at \\n, one \\r before it
    dropped."""
    return [line.removesuffix("\r") for line in text.removeprefix("\ufeff").split("\n")]


def directives(text: str) -> dict[str, str]:
    """The parser directives at the top, lower-cased; the first line that is not a known
    directive ends them (as in BuildKit: an unknown one too)."""
    found: dict[str, str] = {}
    for line in _lines(text):
        match = _DIRECTIVE.match(line)
        if not match or match.group(1).lower() not in _KNOWN_DIRECTIVES:
            break
        found.setdefault(match.group(1).lower(), match.group(2))
    return found


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, its arguments) per logical line, as BuildKit's parser makes them:
    comment lines (``#`` after leading white space) out, also inside a continuation; a
    line continues when the escape character ends it, followed by spaces or tabs only."""
    escape = directives(text).get("escape", "\\")
    escape = escape if escape in ("\\", "`") else "\\"
    continued = re.compile(re.escape(escape) + r"[ \t]*$")
    pending: str | None = None
    for line in _lines(text):
        if line.lstrip().startswith("#"):
            continue
        if pending is not None and not line.strip():
            continue  # an empty line inside a continuation
        match = continued.search(line)
        if match:
            pending = (pending or "") + line[: match.start()]
            continue
        whole, pending = (pending or "") + line, None
        if whole.strip():
            yield _split(whole)
    if pending is not None and pending.strip():
        yield _split(pending)


def _split(line: str) -> tuple[str, str]:
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    return parts[0].upper(), parts[1] if len(parts) > 1 else ""


def fetches(text: str) -> list[str]:
    """The sources ``ADD`` downloads (a URL, a git repository), ``ONBUILD ADD`` too, and
    any source written with a variable (it may hold one)."""
    found = []
    for word, rest in instructions(text):
        if word == "ONBUILD":
            word, rest = _split(rest)
        if word == "ADD":
            found += [s for s in _sources(rest) if _REMOTE.match(s) or "$" in s]
    return found


def _sources(rest: str) -> list[str]:
    """ADD's sources (all its arguments but the last), flags skipped, either form."""
    rest = rest.strip()
    while rest.startswith("--"):
        parts = _WHITESPACE.split(rest, maxsplit=1)
        rest = parts[1].strip() if len(parts) > 1 else ""
    if rest.startswith("["):
        try:
            listed = json.loads(rest)
        except ValueError:
            listed = None
        if isinstance(listed, list) and all(isinstance(item, str) for item in listed):
            return [item.strip() for item in listed[:-1]]
    return [word for word in _WHITESPACE.split(rest) if word][:-1]


def images(text: str, build_args: Mapping[str, str]) -> list[str]:
    """Each image ``FROM`` and ``COPY --from`` name, variables filled in (an unknown one
    stays as ``$NAME``: the caller cannot tell what would be pulled), stages left out."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    found: list[str] = []
    seen_from = False
    for word, rest in instructions(text):
        if word == "ARG" and not seen_from:
            for item in _words(rest):
                name, _, default = item.partition("=")
                args[name] = build_args.get(name, _expand(default.strip("\"'"), args))
        elif word == "FROM":
            seen_from = True
            parts = [p for p in _words(rest) if not p.startswith("--")]
            if not parts:
                continue
            image = _expand(parts[0], args)
            if image.lower() != "scratch" and image.lower() not in stages:
                found.append(image)
            if len(parts) >= 3 and parts[1].lower() == "as":
                stages.add(parts[2].lower())
        elif word in ("COPY", "RUN", "ADD"):
            for flag in _words(rest):
                ref = ""
                if flag.startswith("--from="):
                    ref = flag.partition("=")[2]
                elif flag.startswith("--mount="):  # RUN --mount=type=bind,from=IMAGE
                    for part in flag.partition("=")[2].split(","):
                        key, _, val = part.partition("=")
                        ref = val if key.strip().lower() == "from" else ref
                ref = _expand(ref, args)
                if ref and not ref.isdigit() and ref.lower() not in stages:
                    found.append(ref)
    return list(dict.fromkeys(found))


def _words(text: str) -> list[str]:
    return [word for word in _WHITESPACE.split(text.strip()) if word]


def _expand(text: str, args: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        if name not in args:
            return match.group(0)
        current, kind, other = args[name], match.group(2), match.group(3)
        if kind == "-":
            return current or other
        if kind == "+":
            return other if current else ""
        return current

    return _VARIABLE.sub(value, text)
