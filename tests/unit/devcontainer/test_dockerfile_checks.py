"""What a devcontainer's Dockerfile makes the engine fetch on the host's network: ADD of a
URL or git repository (refused without the profile's network), and every image it starts
or copies from (each must be here: codex-box pulls nothing), read as the engine reads the
file — continuations, the escape directive, ARG defaults and build args, stage names."""

from __future__ import annotations

import pytest

from orchestrator.core.errors import ConfigError, Refused
from orchestrator.devcontainer import build as build_module
from orchestrator.devcontainer.build import check_fetches
from orchestrator.devcontainer.dockerfile import directives, fetches, images, instructions
from orchestrator.devcontainer.plan import Build


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("FROM a\nADD http://127.0.0.1:8/x /y\n", ["http://127.0.0.1:8/x"]),
        ("FROM a\nadd --chown=1:1 https://169.254.169.254/latest /m\n",
         ["https://169.254.169.254/latest"]),
        ("FROM a\nADD git@github.com:o/r.git /r\n", ["git@github.com:o/r.git"]),
        ("FROM a\nADD https://github.com/o/r.git#main /r\n", ["https://github.com/o/r.git#main"]),
        ('FROM a\nADD ["http://h/x", "/y"]\n', ["http://h/x"]),
        ("FROM a\nADD \\\n  http://h/x \\\n  /y\n", ["http://h/x"]),
        ("# escape=`\nFROM a\nADD `\n  ftp://h/x `\n  /y\n", ["ftp://h/x"]),
        ("FROM a\nONBUILD ADD http://h/x /y\n", ["http://h/x"]),
        ("FROM a\n  # a comment\nADD local.txt /y\nCOPY http.txt /z\n", []),
        ("FROM a\nRUN curl http://h/x\n", []),  # RUN steps get --network none
        ("FROM a\nARG U=http://h/x\nADD $U /y\n", ["$U"]),  # a variable may hold a URL
        ("FROM a\nENV U=http://h/x\nADD ${U} /y\n", ["${U}"]),
        # Read as BuildKit reads them (each fetched by the real engines in the red team's
        # round 2): a tab after ADD, JSON without spaces, a BOM before the escape
        # directive, an unknown directive ending the directives, a no-break space after
        # the escape character (no continuation then), CRLF line ends.
        ("FROM a\nADD\thttp://h/x /y\n", ["http://h/x"]),
        ('FROM a\nADD ["http://h/x","/y"]\n', ["http://h/x"]),
        ("\ufeff# escape=`\nFROM a\nADD `\n  http://h/x /y\n", ["http://h/x"]),
        ("# foo=bar\n# escape=`\nFROM a\nRUN echo `\nADD http://h/x /y\n", ["http://h/x"]),
        ("FROM a\nRUN echo \\\u00a0\nADD http://h/x /y\n", ["http://h/x"]),
        ("FROM a\r\nADD http://h/x /y\r\n", ["http://h/x"]),
    ],
)  # fmt: skip
def test_what_add_downloads(text: str, found: list[str]) -> None:
    assert fetches(text) == found


def test_the_escape_directive_and_comments_inside_a_continuation() -> None:
    text = "# escape=`\n# syntax=x\nFROM a\nRUN echo 1 `\n# inside\n  echo 2\n"
    assert directives(text) == {"escape": "`", "syntax": "x"}
    assert list(instructions(text)) == [("FROM", "a"), ("RUN", "echo 1   echo 2")]


@pytest.mark.parametrize(
    ("text", "args", "found"),
    [
        ("FROM debian:12\n", {}, ["debian:12"]),
        ("ARG BASE=codex-box/base\nFROM ${BASE} AS one\nFROM one\n", {}, ["codex-box/base"]),
        ("ARG BASE=codex-box/base\nFROM $BASE\n", {"BASE": "other/x"}, ["other/x"]),
        ("ARG V\nFROM img:${V:-1}\n", {}, ["img:1"]),
        ("FROM $UNDECLARED\n", {"UNDECLARED": "x"}, ["$UNDECLARED"]),  # not an ARG: stays
        ("FROM scratch\nCOPY --from=tools/x:1 /a /b\n", {}, ["tools/x:1"]),
        ("FROM a AS build\nFROM b\nCOPY --from=build /a /b\nCOPY --from=0 /a /b\n", {},
         ["a", "b"]),
        ("FROM a\nRUN --mount=type=bind,from=m/img,target=/m true\n", {}, ["a", "m/img"]),
        ("FROM --platform=linux/amd64 a AS x\n", {}, ["a"]),
        ("FROM\t127.0.0.1:5000/pulled:x\n", {}, ["127.0.0.1:5000/pulled:x"]),
    ],
)  # fmt: skip
def test_every_image_a_build_would_start_or_copy_from(
    text: str, args: dict[str, str], found: list[str]
) -> None:
    assert images(text, args) == found


def check(
    text: str,
    *,
    network: bool,
    local: bool,
    monkeypatch: pytest.MonkeyPatch,
    triggers: tuple[str, ...] = (),
) -> None:
    monkeypatch.setattr(build_module, "onbuild", lambda *_args: list(triggers))
    seen: list[str] = []
    monkeypatch.setattr(
        build_module, "is_local", lambda _e, image, _env: seen.append(image) or local
    )
    check_fetches("docker", Build("/w/Dockerfile", "/w"), text, network=network, environ={})


def test_add_of_a_url_is_refused_without_network_and_allowed_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "FROM codex-box/base\nADD http://127.0.0.1:9/secret /s\n"
    with pytest.raises(Refused, match=r"fetches http://127\.0\.0\.1:9/secret on the host"):
        check(text, network=False, local=True, monkeypatch=monkeypatch)
    check(text, network=True, local=True, monkeypatch=monkeypatch)


def test_an_image_not_here_is_never_pulled(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"starts from 127\.0\.0\.1:5000/base, which docker does"):
        check("FROM 127.0.0.1:5000/base\n", network=True, local=False, monkeypatch=monkeypatch)


def test_an_image_it_cannot_name_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Refused, match=r"cannot tell which image \$X"):
        check("FROM $X\n", network=True, local=True, monkeypatch=monkeypatch)


def test_a_base_image_s_onbuild_fetch_is_refused_without_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trigger = ("ADD http://127.0.0.1:9/secret /s",)
    with pytest.raises(Refused, match=r"ONBUILD trigger that fetches http://127\.0\.0\.1:9"):
        check("FROM base\n", network=False, local=True, monkeypatch=monkeypatch, triggers=trigger)
    check("FROM base\n", network=True, local=True, monkeypatch=monkeypatch, triggers=trigger)
    check("FROM base\n", network=False, local=True, monkeypatch=monkeypatch,
          triggers=("RUN make",))  # fmt: skip
