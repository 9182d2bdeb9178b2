"""``$CODEX_HOME/config.toml`` (``settings.config.load_config``, what every command reads
first): valid TOML of the wrong shapes, and bytes that are not TOML at all, give a valid
``Config`` or a one-line ``ConfigError`` (exit 125) — never a crash."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.errors import EXIT_SETUP, ConfigError
from orchestrator.settings.config import POLICY_MODES, Config, load_config

from .conftest import assert_one_line_error, fuzz, huge_ints, odd_text, outcome, raw_bytes

SECTIONS = {
    "sandbox": ["mode", "profile", "network_access", "backend", "devcontainer"],
    "policy": ["mode"],
    "audit": ["max_bytes", "keep", "syslog", "jsonl"],
    "network": ["hosts", "ca_bundle"],
    "sandbox_workspace_write": ["network_access"],
}
TOP = ["sandbox_mode", "model", *SECTIONS]


def toml_key(key: str) -> str:
    return toml_string(key)


def toml_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\' or ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\\uFFFD")  # TOML cannot spell a lone surrogate
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(
            value
        ) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


toml_scalars = (
    st.booleans()
    | huge_ints.filter(lambda n: -(2**63) <= n < 2**63)
    | st.floats()
    | odd_text
    | st.sampled_from(["workspace-write", "read-only", "trusted", "enforce", "10.0.0.5", "~"])
    | st.sampled_from([0, 1, -1, 4095, 4096, 2**63 - 1, True, 0.5])
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(odd_text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def config_documents(draw: st.DrawFn) -> str:
    """A TOML document with codex-box's tables and keys, and values of any type."""
    lines = []
    for top in draw(st.lists(st.sampled_from(TOP), unique=True, max_size=4)):
        if top in SECTIONS and draw(st.booleans()):
            lines.append(f"[{top}]")
            keys = st.sampled_from(SECTIONS[top]) | odd_text
            for key in draw(st.lists(keys, unique=True, max_size=4)):
                value = draw(toml_scalars if draw(st.booleans()) else toml_values)
                lines.append(f"{toml_key(key)} = {toml_value(value)}")
            if top == "network" and draw(st.booleans()):
                lines.append("[network.hosts]")
                for name, addr in draw(st.dictionaries(odd_text, toml_values, max_size=3)).items():
                    lines.append(f"{toml_key(name)} = {toml_value(addr)}")
        else:
            lines.insert(0, f"{toml_key(top)} = {toml_value(draw(toml_values))}")
    return "\n".join(lines) + "\n"


def check(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as home:
        Path(home, "config.toml").write_bytes(raw)
        config, error = outcome(lambda: load_config(Path(home)))
    if error is not None:
        assert_one_line_error(error, ConfigError, exit_code=EXIT_SETUP)
        return
    # A config that loads holds only what the documented checks let through.
    assert isinstance(config, Config)
    assert config.policy_mode in (None, *POLICY_MODES)
    assert config.profile is None or (isinstance(config.profile, str) and config.profile)
    assert isinstance(config.audit.max_bytes, int) and config.audit.max_bytes >= 4096
    assert isinstance(config.audit.keep, int) and config.audit.keep >= 1
    for name, address in config.network.hosts:
        assert isinstance(name, str) and isinstance(address, str)


@st.composite
def plausible_documents(draw: st.DrawFn) -> str:
    """One table, its values usually of the right type: checks past the first pass."""
    table = draw(st.sampled_from(["audit", "policy", "sandbox", "network.hosts"]))
    keys = SECTIONS.get(table, ["pypi.internal"])
    lines = [f"[{table}]"]
    for key in draw(st.lists(st.sampled_from(keys), unique=True, min_size=1)):
        value = draw(st.integers(-5, 10**7) | st.sampled_from(["enforce", "10.0.0.5", "x", True]))
        lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


@fuzz("config.toml", examples=300)
@given(config_documents() | plausible_documents())
def test_structured_config_toml(document: str) -> None:
    check(document.encode("utf-8", "surrogatepass"))


@fuzz("config.toml", examples=150)
@given(raw_bytes | config_documents().map(lambda d: d.encode()[: len(d) // 2]))
def test_raw_config_toml(raw: bytes) -> None:
    check(raw)
