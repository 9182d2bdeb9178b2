"""Git configuration text, read the way git's own parser reads it (config.c), to find
the keys that make a read-only git command run a program: ``core.fsmonitor``,
``core.hooksPath``, ``core.pager``, ``pager.*``, ``diff.external``, textconv and filter
drivers, ``credential.helper``, ``gpg.program``, ``!`` aliases, ``include.path``…

Owns: tokenising a config file (sections, ``[section "sub"]``, the old ``[a.b]``,
several entries on one line, quotes, escapes, ``\\`` line continuations, comments)
and the list of executing keys. Pure: it is given the text.
Does not own: finding the repository or reading its files (``gitrepo``).

Fails closed: text git itself would reject (or that this reader does not follow) is
reported as a problem, since a disagreement between two parsers is where a key hides.
"""

from __future__ import annotations

import string

_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-")
_SPACE = frozenset(" \t\r\v\f")  # isspace() in the C locale, newline apart
_BOOLEAN = frozenset({"", "true", "false", "yes", "no", "on", "off", "1", "0"})

# Keys (the last part of the name) that hold a command or a program's path, whatever
# the section: git runs them, through the shell for most.
EXECUTING_KEYS = frozenset(
    {"cmd", "command", "program", "helper", "textconv", "clean", "smudge", "process",
     "driver", "tunnel", "editor", "pager", "sshcommand", "askpass", "gitproxy",
     "hookspath", "external", "difffilter", "alternaterefscommand", "packobjectshook",
     "uploadpack", "receivepack", "browser", "viewer", "sendmailcmd", "tocmd", "cccmd",
     "headercmd", "smtpserver", "fsmonitor", "vcs", "defaultkeycommand"}
)  # fmt: skip
# Sections whose <tool>.path names the program run for that tool.
_TOOL_PATH_SECTIONS = frozenset({"difftool", "mergetool", "man", "browser"})
# An include may pull any executing key in from a file nobody has read.
_INCLUDE_SECTIONS = frozenset({"include", "includeif"})
# Keys where a boolean means "on/off", not a program: core.fsmonitor = true is git's
# own daemon, color.pager and pager.<cmd> = true only choose whether to page.
_BOOLEAN_OK = frozenset({"fsmonitor", "pager"})


class ConfigSyntaxError(ValueError):
    """The text is not a config file git would read (git refuses it too)."""


def entries(text: str) -> list[tuple[str, str | None]]:
    """Every ``(name, value)`` in the text, names as git compares them: section and key
    lower-cased, a quoted subsection as written; a key alone has the value None."""
    return _Reader(text.removeprefix("\ufeff")).read()


def executing(name: str, value: str | None) -> bool:
    """Whether a config entry makes git run something (or read more configuration)."""
    section, _, rest = name.partition(".")
    subsection, _, key = rest.rpartition(".")
    shown = "" if value is None else value.strip().lower()
    if section in _INCLUDE_SECTIONS:
        return True
    if section == "alias" or (section == "submodule" and key == "update"):
        return shown.startswith("!")  # "!cmd": run through the shell
    if section == "pager":  # pager.<cmd> = <program>, or a boolean
        return shown not in _BOOLEAN
    if section == "protocol" and key == "allow":  # ext:: URLs run any command
        return shown != "never"
    if section == "log" and key == "showsignature":  # runs gpg.program on every log
        return shown not in ("false", "no", "off", "0")
    if key == "path" and subsection and section in _TOOL_PATH_SECTIONS:
        return True
    if key in _BOOLEAN_OK and shown in _BOOLEAN:
        return False
    return key in EXECUTING_KEYS


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

    def read(self) -> list[tuple[str, str | None]]:
        out: list[tuple[str, str | None]] = []
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
                self.section = self.header()
            elif char.isascii() and char.isalpha():
                if not self.section:
                    raise ConfigSyntaxError("a key outside any section")
                out.append(self.entry(char))
            else:
                raise ConfigSyntaxError(f"unexpected {char!r}")

    def header(self) -> str:
        name = ""
        while True:
            char = self.next()
            if self.eof:
                raise ConfigSyntaxError("an unterminated section header")
            if char == "]":
                if not name:
                    raise ConfigSyntaxError("an empty section name")
                return name
            if char in _SPACE:
                return self.subsection(name)
            if char not in _KEY_CHARS and char != ".":
                raise ConfigSyntaxError(f"{char!r} in a section name")
            name += char.lower()

    def subsection(self, name: str) -> str:
        char = self.next()
        while char in _SPACE:
            char = self.next()
        if char != '"':
            raise ConfigSyntaxError("a subsection that is not quoted")
        sub = ""
        while True:
            char = self.next()
            if char == "\n":
                raise ConfigSyntaxError("an unterminated subsection")
            if char == '"':
                break
            if char == "\\":
                char = self.next()
                if char == "\n":
                    raise ConfigSyntaxError("an unterminated subsection")
            sub += char
        if self.next() != "]":
            raise ConfigSyntaxError("a subsection header not closed by ]")
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
            raise ConfigSyntaxError(f"{name} is followed by {char!r}, not '='")
        return name, self.value()

    def value(self) -> str:
        value, quote, comment, spaces = "", False, False, 0
        while True:
            char = self.next()
            if char == "\n":
                if quote:
                    raise ConfigSyntaxError("an unterminated quoted value")
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
                    raise ConfigSyntaxError(f"the escape \\{char!r} in a value")
                value += {"t": "\t", "b": "\b", "n": "\n"}.get(char, char)
            elif char == '"':
                quote = not quote
            else:
                value += char
