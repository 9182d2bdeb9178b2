"""Finding and reading devcontainer.json: JSONC accepted, everything else one clean
error naming the file — never a traceback (fuzzed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.core.errors import ConfigError
from orchestrator.devcontainer.config import MAX_BYTES, find_config, read_config


def test_the_spec_s_two_places_in_its_order(tmp_path: Path) -> None:
    assert find_config(tmp_path) is None
    (tmp_path / ".devcontainer.json").write_text("{}")
    assert find_config(tmp_path) == tmp_path / ".devcontainer.json"
    (tmp_path / ".devcontainer").mkdir()
    (tmp_path / ".devcontainer" / "devcontainer.json").write_text("{}")
    assert find_config(tmp_path) == tmp_path / ".devcontainer" / "devcontainer.json"


def test_jsonc_comments_and_trailing_commas(tmp_path: Path) -> None:
    path = tmp_path / "devcontainer.json"
    path.write_text(
        '\ufeff{\n  // line\n  "image": "debian", /* block */\n'
        '  "runArgs": ["--init",],\n  "containerEnv": {"A": "1",},\n}\n'
    )
    assert read_config(path) == {
        "image": "debian",
        "runArgs": ["--init"],
        "containerEnv": {"A": "1"},
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('{"image": ', "not valid JSONC"),
        ("[1, 2]", "is a JSON object, not list"),
        ('"just a string"', "not str"),
        ("", "not valid JSONC"),
    ],
)
def test_malformed_is_one_line_naming_the_file(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "devcontainer.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        read_config(path)
    assert str(path) in exc.value.message and says in exc.value.message
    assert "\n" not in exc.value.message


def test_too_big_missing_and_not_utf8(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text("{" + " " * MAX_BYTES + "}")
    with pytest.raises(ConfigError, match="over 1024 KiB"):
        read_config(big)
    with pytest.raises(ConfigError, match="cannot read"):
        read_config(tmp_path / "absent.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_config(latin)


JSONISH = st.text(alphabet="{}[]\":,/*\\ \n\t0123456789abcdefnulltrue-+.eE'", max_size=200)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.one_of(JSONISH, st.text(max_size=200)))
def test_any_text_is_an_object_or_a_clean_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "devcontainer.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        assert isinstance(read_config(path), dict)
    except ConfigError as exc:
        assert str(path) in exc.message and "\n" not in exc.message


def test_deep_nesting_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "devcontainer.json"
    path.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError):
        read_config(path)


@pytest.mark.parametrize(
    "text",
    [
        """{"image": "x", 'X, "containerEnv": {"L": "${localEnv:S}"}, "Y': "Z"}""",
        """{"image": "x", 'notes': 'x, "capAdd": ["SYS_ADMIN"] /* ', }""",
        """{image: "x"}""",
        """{"image": "x", "n": 0x10}""",
        """{"image": "x", "n": NaN}""",
        """{"image": "x", "s": "\\x41"}""",
        """{"image": "x" /* never closed }""",
    ],
)
def test_only_what_jsonc_and_json5_read_alike_is_read(tmp_path: Path, text: str) -> None:
    """json5 reads more than JSONC: a single-quoted key (a string to the Dev Containers
    CLI's jsonc-parser, which reads keys inside it) is refused, as is any JSON5-only
    syntax — never a file two tools read differently."""
    path = tmp_path / "devcontainer.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match="JSONC") as info:
        read_config(path)
    assert "\n" not in info.value.one_line()


def test_comments_and_trailing_commas_are_jsonc(tmp_path: Path) -> None:
    path = tmp_path / "devcontainer.json"
    path.write_text('{ // a\n "a": "x,}//", /* b */ "b": [1, 2,],\n "c": {"d": 1,}, }\n')
    assert read_config(path) == {"a": "x,}//", "b": [1, 2], "c": {"d": 1}}
