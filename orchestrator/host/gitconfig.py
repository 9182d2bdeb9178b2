"""Git config read as text, the way git's own parser (config.c) reads it, and which of
its keys make git run a program: ``core.fsmonitor``, ``core.hooksPath``, ``core.pager``,
``pager.*``, ``diff.external``, textconv and filter drivers, ``credential.helper``,
``gpg.program``, ``!`` aliases, ``include.path``…

Owns: reading a config file without running git (no symlink followed, bounded in
size); tokenising it (sections, ``[section "sub"]``, the old ``[a.b]``, several entries
on one line, quotes, escapes, ``\\`` line continuations, comments); the one list of
executing keys (``executing``, ``executing_keys``), used by the policy (``git -c``, a
repository's config) and by the post-run check (``planted``) alike.
Does not own: finding repositories or their config files (``policy.gitrepo``,
``githooks``, ``planted``).

Fails closed: text git itself would reject (or that this reader does not follow) is a
``ConfigSyntaxError`` when read strictly, and an entry ``executing_keys`` reports when
read leniently, since a disagreement between two parsers is where a key hides.
"""

from __future__ import annotations

import os
import stat
import string

MAX_CONFIG = 64 * 1024  # a config longer than this is itself a finding (padding hides keys)
UNPARSABLE = "(unparsable config"  # the name of the entry a lenient read puts for an error
_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-")
_SPACE = frozenset(" \t\r\v\f")  # isspace() in the C locale, newline apart
_FALSE = frozenset({"false", "no", "off", "0"})
_BOOLEAN = _FALSE | {"", "true", "yes", "on", "1"}  # "": a key alone, or an empty value

# Keys (the last part of the name) that hold a command or a program's path, whatever
# the section: git runs them, through the shell for most.
EXECUTING_KEYS = frozenset(
    {"cmd", "command", "program", "helper", "textconv", "clean", "smudge", "process",
     "driver", "tunnel", "editor", "pager", "sshcommand", "askpass", "gitproxy",
     "hookspath", "external", "difffilter", "alternaterefscommand", "packobjectshook",
     "uploadpack", "receivepack", "browser", "viewer", "sendmailcmd", "tocmd", "cccmd",
     "headercmd", "smtpserver", "fsmonitor", "vcs", "defaultkeycommand"}
)  # fmt: skip
# Sections every key of which counts: an include pulls in any key from a file nobody
# has read; filter drivers, instaweb's httpd and browser, gui tools, and ``protocol``
# (ext:: URLs run any command once allowed; ``allow = never`` is the exception).
EXECUTING_SECTIONS = frozenset(
    {"include", "includeif", "filter", "instaweb", "guitool", "protocol"}
)
# Sections whose ``path`` (``<tool>.path``, or the bare key) names the program run.
_TOOL_PATH_SECTIONS = frozenset({"difftool", "mergetool", "man", "browser"})
# Keys where a boolean means "on/off", not a program: core.fsmonitor = true is git's
# own daemon, color.pager only chooses whether to page (core.pager is always a program:
# git runs "false" for core.pager = false).
_BOOLEAN_OK = frozenset({"fsmonitor", "pager"})


class ConfigSyntaxError(ValueError):
    """The text is not a config file git would read (git refuses it too)."""


def read_bounded(path: str, limit: int = MAX_CONFIG) -> tuple[str, bool] | None:
    """The text of the regular file at ``path`` (its last component not followed) and
    whether it was cut at ``limit``; None if it is no readable regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data[:limit].decode("utf-8", "replace"), len(data) > limit


def config_entries(text: str, *, strict: bool = False) -> list[tuple[str, str | None]]:
    """Every ``(name, value)`` in the text, names as git compares them: section and key
    lower-cased, a quoted subsection as written; a key alone has the value None.

    What git would not parse raises ``ConfigSyntaxError`` when ``strict``; otherwise the
    rest of that line is skipped and one entry ``(unparsable config: why)`` (value None)
    stands for every such error, which ``executing_keys`` reports."""
    return _Reader(text.removeprefix("\ufeff")).read(strict)


def executing(name: str, value: str | None) -> bool:
    """Whether a config entry makes git run something (or read more configuration)."""
    section, _, rest = name.partition(".")
    _, _, key = rest.rpartition(".")
    shown = "" if value is None else value.strip().lower()
    if section == "alias" or (section == "submodule" and key == "update"):
        return shown.startswith("!")  # "!cmd": run through the shell
    if section == "remote" and key == "url" and shown.startswith("ext::"):
        return True  # the ext:: transport runs the rest as a command
    if section == "protocol":
        return not (key == "allow" and shown == "never")
    if section in EXECUTING_SECTIONS or (section == "core" and key == "pager"):
        return True
    if section == "pager":  # pager.<cmd> = <program>, or a boolean
        return shown not in _BOOLEAN
    if section == "log" and key == "showsignature":  # runs gpg.program on every log
        return shown not in _FALSE
    if key == "path" and section in _TOOL_PATH_SECTIONS:
        return True
    if key in _BOOLEAN_OK and shown in _BOOLEAN:
        return False
    return key in EXECUTING_KEYS


def executing_keys(entries: list[tuple[str, str | None]]) -> list[str]:
    """The keys git would run a command for (or that pull in other config), and the
    entry standing for text that could not be parsed; each once, in order."""
    found = [k for k, v in entries if k.startswith(UNPARSABLE) or executing(k, v)]
    return list(dict.fromkeys(found))


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text.replace("\r\n", "\n")
        self.at = 0
        self.section = ""

    def next(self) -> str:
        """The next character; "\n" at the end, as git's get_next_char."""
        if self.at >= len(self.text):
            self.at += 1
            return "\n"
        char = self.text[self.at]
        self.at += 1
        return char

    @property
    def eof(self) -> bool:
        return self.at > len(self.text)

    def fail(self, why: str) -> ConfigSyntaxError:
        line = self.text.count("\n", 0, max(self.at - 1, 0)) + 1
        return ConfigSyntaxError(f"{why} on line {line}")

    def read(self, strict: bool) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
        while True:
            try:
                return self.lines(out)
            except ConfigSyntaxError as exc:
                if strict:
                    raise
                if not any(name.startswith(UNPARSABLE) for name, _ in out):
                    out.append((f"{UNPARSABLE}: {exc})", None))
            if self.text[self.at - 1 : self.at] != "\n":  # the error did not end its line
                end = self.text.find("\n", self.at)
                self.at = len(self.text) if end < 0 else end + 1

    def lines(self, out: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
        comment = False
        while True:
            char = self.next()
            if char == "\n":
                if self.eof:
                    return out
                comment = False
            elif comment or char in _SPACE:
                continue
            elif char in "#;":
                comment = True
            elif char == "[":
                self.section = ""  # until the header is read: no key goes astray
                self.section = self.header()
            elif char.isascii() and char.isalpha():
                if not self.section:
                    raise self.fail("a key outside any section")
                out.append(self.entry(char))
            else:
                raise self.fail(f"unexpected {char!r}")

    def header(self) -> str:
        name = ""
        while True:
            char = self.next()
            if self.eof:
                raise self.fail("an unterminated section header")
            if char == "]":
                if not name:
                    raise self.fail("an empty section name")
                return name
            if char in _SPACE:
                return self.subsection(name)
            if char not in _KEY_CHARS and char != ".":
                raise self.fail(f"{char!r} in a section name")
            name += char.lower()

    def subsection(self, name: str) -> str:
        char = self.next()
        while char in _SPACE:
            char = self.next()
        if char != '"':
            raise self.fail("a subsection that is not quoted")
        sub = ""
        while True:
            char = self.next()
            if char == "\n":
                raise self.fail("an unterminated subsection")
            if char == '"':
                break
            if char == "\\":
                char = self.next()
                if char == "\n":
                    raise self.fail("an unterminated subsection")
            sub += char
        if self.next() != "]":
            raise self.fail("a subsection header not closed by ]")
        return f"{name}.{sub}"

    def entry(self, first: str) -> tuple[str, str | None]:
        key = first.lower()
        char = self.next()
        while not self.eof and char in _KEY_CHARS:
            key += char.lower()
            char = self.next()
        while char in (" ", "\t"):
            char = self.next()
        name = f"{self.section}.{key}"
        if char == "\n":
            return name, None
        if char != "=":
            raise self.fail(f"{name} is followed by {char!r}, not '='")
        return name, self.value()

    def value(self) -> str:
        value, quote, comment, spaces = "", False, False, 0
        while True:
            char = self.next()
            if char == "\n":
                if quote:
                    raise self.fail("an unterminated quoted value")
                return value
            if comment:
                continue
            if char in _SPACE and not quote:
                spaces += bool(value)
                continue
            if not quote and char in "#;":
                comment = True
                continue
            value += " " * spaces
            spaces = 0
            if char == "\\":
                char = self.next()
                if char == "\n" and not self.eof:
                    continue  # a continuation line: still this value
                if char not in 'tbn\\"':
                    raise self.fail(f"the escape \\{char!r} in a value")
                value += {"t": "\t", "b": "\b", "n": "\n"}.get(char, char)
            elif char == '"':
                quote = not quote
            else:
                value += char
