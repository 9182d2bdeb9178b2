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

import re
from collections.abc import Iterator, Mapping

_DIRECTIVE = re.compile(r"^#\s*([A-Za-z]+)\s*=\s*(\S+)\s*$")
_VARIABLE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)
_REMOTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|git@|[^/\s]+\.git(?:#|$))")


def directives(text: str) -> dict[str, str]:
    """The parser directives at the top (``syntax``, ``escape``, ``check``), lower-cased."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _DIRECTIVE.match(line.strip())
        if not match:
            break
        found[match.group(1).lower()] = match.group(2)
    return found


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """(INSTRUCTION, its arguments) per logical line; continuations joined, comments out."""
    escape = directives(text).get("escape", "\\")
    escape = escape if escape in ("\\", "`") else "\\"
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith(escape):
            pending += line[: -len(escape)] + " "
            continue
        whole = (pending + line).strip()
        pending = ""
        if whole:
            word, _, rest = whole.partition(" ")
            yield word.upper(), rest.strip()
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        yield word.upper(), rest.strip()


def fetches(text: str) -> list[str]:
    """The sources ``ADD`` downloads (a URL, a git repository), ``ONBUILD ADD`` too, and
    any source written with a variable (it may hold one)."""
    found = []
    for word, rest in instructions(text):
        if word == "ONBUILD":
            word, _, rest = rest.partition(" ")
            word = word.upper()
        if word != "ADD":
            continue
        sources = [t.strip("\"'[],") for t in _words(rest) if not t.startswith("--")][:-1]
        # A variable (ARG or ENV) may hold a URL: what it names cannot be told here.
        found += [s for s in sources if _REMOTE.match(s) or "$" in s]
    return found


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
    return text.split()


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
