"""Profile YAML: a user profile (``$CODEX_HOME/profiles/NAME.yaml``, loaded by
``ProfileStore.get`` as ``--profile NAME`` does) and a ``.codex-profile`` (found and
judged by ``resolve_profile``, as every run does — the one profile input a sandboxed
command may have written). Malformed input gives a one-line ``ConfigError`` (exit 125)
or ``Refused`` (exit 126) — never a crash, a hang, or a profile looser than it may be."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.core.errors import EXIT_REFUSED, EXIT_SETUP, ConfigError, Refused
from orchestrator.profiles.schema import BUILTIN_NAMES, FIELDS, TOP_KEYS
from orchestrator.profiles.store import ProfileStore
from orchestrator.profiles.widening import wider
from orchestrator.resolve.precedence import resolve_profile
from orchestrator.settings.config import Config

from .conftest import assert_one_line_error, deep_nesting, fuzz, json_values, odd_text, outcome

KEYS = [*TOP_KEYS, *FIELDS]
SOME_VALUES = st.sampled_from(
    [*BUILTIN_NAMES, "read-only", "full", "none", "read-write", "quarantine", "default",
     "codex-box-offline", ["pypi.org"], ["*.com"], ["*"], ["~/.ssh"], [".git"], [".."],
     ["/"], ["a/b"], ["x\0y"], [], {}, None, True, "0x10", "1e999", ["[::1]:80"]]
)  # fmt: skip
values = SOME_VALUES | json_values


def nest(flat: dict[str, Any]) -> dict[Any, Any]:
    """``{"network.allow": v}`` → ``{"network": {"allow": v}}``."""
    out: dict[Any, Any] = {}
    for dotted, value in flat.items():
        head, _, rest = dotted.partition(".")
        if rest and isinstance(out.setdefault(head, {}), dict):
            out[head][rest] = value
        else:
            out[head] = value
    return out


@st.composite
def profile_documents(draw: st.DrawFn) -> str:
    """A mapping of profile keys (and some that are not) to values of any shape."""
    flat = draw(st.dictionaries(st.sampled_from(KEYS) | odd_text, values, max_size=5))
    if draw(st.booleans()):
        flat["extends"] = draw(st.sampled_from([*BUILTIN_NAMES, "mine", "nope"]))
    document = yaml.safe_dump(nest(flat), allow_unicode=draw(st.booleans()))
    return document


def _laughs(levels: int) -> str:
    parts = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    parts += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


NASTY = st.sampled_from(
    [
        "extends: " + _laughs(9),  # "billion laughs": 379 bytes, 9**9 strings
        "extends: workspace\nnetwork:\n  allow: " + _laughs(9),
        "extends: workspace\ndescription: " + _laughs(9),
        "extends: &a [*a]",
        "extends: !!python/object/apply:os.system [true]",
        "extends: workspace\n<<: {network: {mode: full}}",
        "? [a, b]\n: c",
        "extends: workspace\nextends: trusted",
        "---\nextends: workspace\n---\nextends: trusted\n",
        "\ufeffextends: workspace",
        "extends:\tworkspace",
        "extends: workspace\nfilesystem: {writable_paths: [~/.ssh]}",
        "extends: 9" + "9" * 5000,
    ]
)
raw_documents = (
    profile_documents()
    | NASTY
    | deep_nesting().map(lambda d: "extends: " + d)
    | deep_nesting("{a: ", "}").map(lambda d: "extends: workspace\nnetwork: " + d)
    | st.text(odd_text.filter(bool).map(lambda t: t[0]), max_size=300)
    | st.builds(lambda a, b: a + b, profile_documents(), st.sampled_from(["\0", ": :", "\x85"]))
)

USER_PROFILE = "extends: workspace\nnetwork:\n  mode: full\n  allow: [pypi.org, '*.debian.org']\n"


def write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


@fuzz("profile YAML (user profile)", examples=250)
@given(raw_documents)
def test_user_profile_yaml(text: str) -> None:
    with tempfile.TemporaryDirectory() as home:
        (Path(home) / "profiles").mkdir()
        write(Path(home) / "profiles" / "fz.yaml", text)
        store = ProfileStore(codex_home=Path(home))
        profile, error = outcome(lambda: store.get("fz"), text)
    if error is not None:
        assert_one_line_error(error, ConfigError, exit_code=EXIT_SETUP)
        return
    # A user profile only tightens what it extends, but for named write grants and
    # unprotected names (README: "Your own profiles").
    base = store.builtins()[profile.extends]
    loosened = {phrase.split(" ", 1)[0] for phrase in wider(base, profile)}
    loosened -= {"filesystem.writable_paths", "filesystem.unprotect"}
    loosened -= {"filesystem.protected_paths"} if profile.unprotected else set()
    assert not loosened, f"{text!r} loosens {base.name}: {loosened}"


def _resolve(text: str) -> tuple[Any, BaseException | None, Path]:
    with tempfile.TemporaryDirectory() as top:
        home, workspace = Path(top, "home"), Path(top, "proj")
        (home / "profiles").mkdir(parents=True)
        (home / "profiles" / "mine.yaml").write_text(USER_PROFILE)
        workspace.mkdir()
        write(workspace / ".codex-profile", text)
        os.chmod(workspace / ".codex-profile", 0o644)
        store = ProfileStore(codex_home=home)
        config = Config(path=home / "config.toml")
        resolution, error = outcome(
            lambda: resolve_profile(
                flag=None, environ={}, workspace=workspace, config=config, store=store,
                codex_home=home,
            ),
            text,
        )  # fmt: skip
        return resolution, error, workspace


@fuzz(".codex-profile", examples=250)
@given(raw_documents | odd_text | st.sampled_from(["trusted", "danger-full-access", "x y"]))
def test_codex_profile(text: str) -> None:
    resolution, error, _ = _resolve(text)
    if error is not None:
        if isinstance(error, Refused):
            assert_one_line_error(error, Refused, exit_code=EXIT_REFUSED)
        else:
            assert_one_line_error(error, ConfigError, exit_code=EXIT_SETUP)
        return
    # Unapproved, a .codex-profile never makes the profile wider than the default,
    # and never selects an unsandboxed one (README: Approving a .codex-profile).
    profile = resolution.profile
    assert profile.sandboxed and not profile.requires_opt_in, text
    offline = ProfileStore(codex_home=Path("/nonexistent")).builtins()["offline"]
    assert not wider(offline, profile), f"{text!r} widened offline to {profile.name}"
    for dotted, field in FIELDS.items():  # the same, key by key, without profiles.widening
        old, new = getattr(offline, field.attr), getattr(profile, field.attr)
        if field.order is not None and old in field.order and new in field.order:
            assert field.order.index(new) <= field.order.index(old), (text, dotted, new)
