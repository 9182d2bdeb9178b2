"""The compiled-policy cache (issue 19): a launch whose rule files are unchanged reads
the rules from a verified entry under CODEX_HOME and never imports Starlark; any change
to any rule file is evaluated from source again; an entry that fails any check (MAC,
key, owner, mode, symlink, shape) is ignored and rebuilt, its rules never applied.

The tampered entries make ``rm -rf /`` safe under the trusted profile (where only a
rule's forbidden paths stop it); ``test_the_tamper_would_loosen_if_it_were_trusted``
shows that a correctly signed one would, so each "still forbidden" below is the check's
doing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import orchestrator
from orchestrator.core.errors import EXIT_SETUP
from orchestrator.policy import Context, Decision, Policy, PolicyError, cache, load_policy, loader
from orchestrator.policy.rules import ArgType, Option, PipeRule, PrefixRule, Program, RuleSet, Where
from tests.conftest import REPO, small_tmpfs
from tests.unit.policy import test_policy_table as table

RM = ("rm", "-rf", "/")
TRUSTED = Context(cwd="/", home="/root", writable_roots=None)  # only forbidden paths stop
USER_RULE = 'prefix_rule(pattern = ["make", "test"], decision = "safe")\n'
PROJECT_RULE = 'prefix_rule(pattern = ["git", "push"], decision = "forbidden")\n'


@pytest.fixture(autouse=True)
def _no_memo() -> Iterator[None]:
    """Each test reads entries from disk, not from what an earlier test remembered."""
    cache.MEMO.clear()
    yield
    cache.MEMO.clear()


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The evaluations from source, each as the files it evaluated."""
    calls: list[list[str]] = []
    real = loader.build

    def counting(sources: Any) -> RuleSet:
        calls.append([s.path.name for s in sources])
        return real(sources)

    monkeypatch.setattr(loader, "build", counting)
    return calls


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "codex"
    (path / "rules").mkdir(parents=True)
    (path / "rules" / "mine.policy").write_text(USER_RULE)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "proj"
    (path / ".codex" / "rules").mkdir(parents=True)
    (path / ".codex" / "rules" / "no-push.policy").write_text(PROJECT_RULE)
    return path


def directory(home: Path) -> Path:
    return home / "cache" / "policy"


def entry_file(home: Path) -> Path:
    (found,) = directory(home).glob("*.json")
    return found


def judge(home: Path, project: Path | None = None, argv: Sequence[str] = RM) -> Decision:
    cache.MEMO.clear()  # from disk, as a new launch reads it
    return Policy(load_policy(codex_home=home, workspace=project)).evaluate(argv, TRUSTED).decision


def rewrite(home: Path, change: Callable[[dict[str, Any]], None], *, key: bytes | None) -> None:
    """Change the entry's body; re-sign it with ``key`` (None: keep the old MAC)."""
    path = entry_file(home)
    mac, _, body = path.read_bytes().partition(b"\n")
    data = json.loads(body)
    change(data)
    new_body = json.dumps(data).encode()
    path.write_bytes((mac if key is None else cache.sign(key, new_body)) + b"\n" + new_body)


def rm_is_safe(data: dict[str, Any]) -> None:
    """The tamper: drop the rm program (its forbidden paths), add `rm` as safe."""
    data["programs"] = [p for p in data["programs"] if p[0] != "rm"]
    data["prefix"].append([["rm"], "safe", "tampered", 0, 1, []])


def real_key(home: Path) -> bytes:
    return (directory(home) / ".key").read_bytes()


# --- the cache is the source, exactly -------------------------------------------------


def test_cached_rules_equal_the_source_and_judge_every_table_row_alike(
    home: Path, project: Path, tmp_path: Path, builds: list[list[str]]
) -> None:
    source = loader.build(loader.read_sources(codex_home=home, workspace=project))
    builds.clear()
    load_policy(codex_home=home, workspace=project)  # the miss: evaluated, then written
    cache.MEMO.clear()
    cached = load_policy(codex_home=home, workspace=project)
    assert len(builds) == 1, "the second load evaluated Starlark again"
    user, mine = home / "rules" / "mine.policy", project / ".codex" / "rules" / "no-push.policy"
    assert cached.files == source.files == (str(loader.DEFAULT_POLICY), str(user), str(mine))
    for kind in ("prefix", "programs", "pipes"):
        got, want = getattr(cached, kind), getattr(source, kind)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            assert a == b, f"{a.describe()} differs from {b.describe()}"
    assert cached == source

    paths = {
        k: str(tmp_path / "t" / n)
        for k, n in (("%WS%", "ws"), ("%HOME%", "home"), ("%OUT%", "outside"), ("%TMP%", "scratch"))
    }
    for path in paths.values():
        Path(path).mkdir(parents=True)
    (Path(paths["%WS%"]) / "escape").symlink_to(paths["%OUT%"])
    (Path(paths["%WS%"]) / "etclink").symlink_to("/etc")
    contexts = table.contexts(paths)
    tables = [
        ("workspace", table.TABLE),
        ("read-only", table.READ_ONLY_TABLE),
        ("trusted", table.TRUSTED_TABLE),
        ("tmp-root", table.TMP_ROOT_TABLE),
    ]
    from_source, from_cache = Policy(source), Policy(cached)
    rows = 0
    for name, rows_of in tables:
        for param in rows_of:
            cmd = param.values[0]
            argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
            argv = [table.fill(a, paths) for a in argv]
            want = from_source.evaluate(argv, contexts[name])
            got = from_cache.evaluate(argv, contexts[name])
            assert got == want and got.summary() == want.summary(), (name, argv)
            rows += 1
    assert rows > 400


def test_every_field_of_every_rule_survives_the_json_form() -> None:
    where = Where(file="/x/a.policy", line=7)
    rules = RuleSet(
        prefix=(
            PrefixRule(
                pattern=("git", ("push", "fetch"), "--force=x"),
                decision=Decision.UNVERIFIED,
                justification="j",
                where=where,
                with_any=("-f*",),
            ),
        ),
        programs=(
            Program(
                program="cp",
                options=(
                    Option(names=("-t", "--target"), value=ArgType.WFILE, optional=True),
                    Option(names=("-r",)),
                ),
                args=(ArgType.RFILES, ArgType.WFILE),
                where=where,
                requires=("-r",),
                forbidden_paths=("/etc/**", "~"),
                justification="cp",
            ),
        ),
        pipes=(
            PipeRule(
                source=("curl",),
                sink=("sh", "bash"),
                decision=Decision.FORBIDDEN,
                justification="p",
                where=Where(file="/y/b.policy", line=2),
            ),
        ),
        files=("/x/a.policy", "/y/b.policy"),
    )
    # Every field above differs from its default: a field the codec forgot would be lost.
    for rule in (*rules.prefix, *rules.programs, *rules.pipes, rules.programs[0].options[0]):
        for f in dataclasses.fields(rule):
            default = f.default if f.default is not dataclasses.MISSING else object()
            assert getattr(rule, f.name) != default, f"{type(rule).__name__}.{f.name}"
    data = json.loads(json.dumps(cache.encode(rules, key="k")))
    assert cache.decode(data, key="k") == rules


def test_a_lossy_json_form_is_never_written(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = cache.encode

    def forgetful(rules: RuleSet, *, key: str) -> dict[str, Any]:
        data = real(rules, key=key)
        data["prefix"] = data["prefix"][1:]
        return data

    monkeypatch.setattr(cache, "encode", forgetful)
    assert judge(home) is Decision.FORBIDDEN
    assert not list(directory(home).glob("*.json"))


# --- a hit does not import Starlark; a change is evaluated again ------------------------

HIT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from orchestrator.policy import Context, Policy, load_policy
    rules = load_policy(codex_home=Path(sys.argv[1]), workspace=Path(sys.argv[2]))
    context = Context(cwd="/", home="/root", writable_roots=None)
    print(Policy(rules).evaluate(["rm", "-rf", "/"], context).decision.label,
          Policy(rules).evaluate(["git", "push"], context).decision.label,
          "starlark" in sys.modules)
""")


@pytest.mark.parametrize("warm", [True, False], ids=["warm cache", "no cache"])
def test_a_hit_never_imports_starlark(home: Path, project: Path, warm: bool) -> None:
    if warm:
        load_policy(codex_home=home, workspace=project)
    ran = subprocess.run(
        [sys.executable, "-c", HIT, str(home), str(project)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.split() == ["forbidden", "forbidden", str(not warm)]


@pytest.mark.parametrize("which", ["default", "user", "project"])
def test_a_changed_rule_file_is_evaluated_again(
    home: Path,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    builds: list[list[str]],
    which: str,
) -> None:
    default = tmp_path / "default.policy"
    default.write_bytes(loader.DEFAULT_POLICY.read_bytes())
    monkeypatch.setattr(loader, "DEFAULT_POLICY", default)
    files = {
        "default": default,
        "user": home / "rules" / "mine.policy",
        "project": project / ".codex" / "rules" / "no-push.policy",
    }
    assert judge(home, project, ["frobnicate", "x"]) is Decision.UNVERIFIED
    assert judge(home, project, ["frobnicate", "x"]) is Decision.UNVERIFIED
    assert len(builds) == 1
    with files[which].open("a") as policy_file:
        policy_file.write('prefix_rule(pattern = ["frobnicate"], decision = "forbidden")\n')
    assert judge(home, project, ["frobnicate", "x"]) is Decision.FORBIDDEN
    assert len(builds) == 2
    if which == "default":
        default.write_bytes(b"")
    else:
        files[which].unlink()
    assert judge(home, project, ["frobnicate", "x"]) is Decision.UNVERIFIED
    assert len(builds) == 3
    assert len(list(directory(home).glob("*.json"))) == 3


def test_an_added_or_removed_rule_file_is_evaluated_again(
    home: Path, project: Path, builds: list[list[str]]
) -> None:
    assert judge(home, project, ["git", "push"]) is Decision.FORBIDDEN
    (project / ".codex" / "rules" / "no-push.policy").rename(project / "moved")
    assert judge(home, project, ["git", "push"]) is not Decision.FORBIDDEN
    assert judge(home, None, ["make", "test"]) is Decision.SAFE  # the same files: a hit
    (home / "rules" / "mine.policy").unlink()
    assert judge(home, None, ["make", "test"]) is Decision.UNVERIFIED
    assert [len(files) for files in builds] == [3, 2, 1]


def test_the_key_covers_paths_tightening_bytes_version_and_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = [("/d.policy", False, b"x"), ("/p/r.policy", True, b"y")]
    key = cache.cache_key(base)
    variants = [
        [("/d.policy", False, b"x"), ("/p/s.policy", True, b"y")],
        [("/d.policy", False, b"x"), ("/p/r.policy", False, b"y")],
        [("/d.policy", False, b"x"), ("/p/r.policy", True, b"z")],
        [("/d.policy", False, b"x")],
        [("/p/r.policy", True, b"y"), ("/d.policy", False, b"x")],
    ]
    assert len({key, *(cache.cache_key(v) for v in variants)}) == 1 + len(variants)
    assert cache.version() == orchestrator.__version__
    monkeypatch.setattr(orchestrator, "__version__", "99.0")
    assert cache.cache_key(base) != key
    monkeypatch.undo()
    monkeypatch.setattr(cache, "_code_digest", b"other code")
    assert cache.cache_key(base) != key


# --- a bad entry is ignored, its rules never applied, and rebuilt --------------------------


def test_the_tamper_would_loosen_if_it_were_trusted(home: Path) -> None:
    assert judge(home) is Decision.FORBIDDEN
    rewrite(home, rm_is_safe, key=real_key(home))  # signed with the real key: trusted
    assert judge(home) is Decision.SAFE


@pytest.mark.parametrize(
    "tamper",
    [
        "body",
        "mac",
        "key file",
        "another entry's key",
        "unknown decision",
        "extra field",
        "short rule",
        "negative index",
        "not json",
        "truncated",
    ],
)
def test_a_tampered_entry_is_ignored_and_rebuilt(
    home: Path, builds: list[list[str]], tamper: str
) -> None:
    assert judge(home) is Decision.FORBIDDEN
    path, secret = entry_file(home), real_key(home)
    if tamper == "body":
        rewrite(home, rm_is_safe, key=None)
    elif tamper == "mac":
        rewrite(home, rm_is_safe, key=os.urandom(32))
    elif tamper == "key file":
        rewrite(home, rm_is_safe, key=secret)
        (directory(home) / ".key").write_bytes(os.urandom(32))
    elif tamper == "another entry's key":
        rewrite(home, lambda d: (rm_is_safe(d), d.update(key="0" * 64)), key=secret)
    elif tamper == "unknown decision":
        rewrite(home, lambda d: d["prefix"][0].__setitem__(1, "allow"), key=secret)
    elif tamper == "extra field":
        rewrite(home, lambda d: (rm_is_safe(d), d.update(extra=1)), key=secret)
    elif tamper == "short rule":
        rewrite(home, lambda d: (rm_is_safe(d), d["prefix"][0].pop()), key=secret)
    elif tamper == "negative index":
        rewrite(home, lambda d: (rm_is_safe(d), d["programs"][0][1].append(-1)), key=secret)
    elif tamper == "not json":
        path.write_bytes(cache.sign(secret, b"{not json") + b"\n{not json")
    else:
        path.write_bytes(path.read_bytes()[:-100])
    assert judge(home) is Decision.FORBIDDEN
    assert len(builds) == 2, "the bad entry was not rebuilt from source"
    assert judge(home) is Decision.FORBIDDEN and len(builds) == 2, "rewritten, then used"


@pytest.mark.parametrize(
    "defect",
    [
        "entry group-writable",
        "entry a symlink",
        "entry a directory",
        "key readable by others",
        "key a symlink",
        "key too short",
        "directory writable by others",
        "directory a symlink",
        "owned by another user",
    ],
)
def test_an_entry_that_is_not_ours_alone_is_ignored(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    builds: list[list[str]],
    defect: str,
) -> None:
    assert judge(home) is Decision.FORBIDDEN
    rewrite(home, rm_is_safe, key=real_key(home))  # it would loosen if it were used
    path, key, folder = entry_file(home), directory(home) / ".key", directory(home)
    elsewhere = tmp_path / "elsewhere"
    if defect == "entry group-writable":
        path.chmod(0o620)
    elif defect == "entry a symlink":
        elsewhere.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(elsewhere)
    elif defect == "entry a directory":
        path.unlink()
        path.mkdir()
    elif defect == "key readable by others":
        key.chmod(0o644)
    elif defect == "key a symlink":
        elsewhere.write_bytes(key.read_bytes())
        elsewhere.chmod(0o600)
        key.unlink()
        key.symlink_to(elsewhere)
    elif defect == "key too short":
        key.write_bytes(key.read_bytes()[:16])
    elif defect == "directory writable by others":
        folder.chmod(0o777)
    elif defect == "directory a symlink":
        folder.rename(elsewhere)
        folder.symlink_to(elsewhere)
    else:
        monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    assert judge(home) is Decision.FORBIDDEN
    assert len(builds) == 2


# --- what is never cached, and where no cache can be written ----------------------------


def test_a_policy_error_is_raised_as_before_and_never_cached(
    home: Path, project: Path, builds: list[list[str]]
) -> None:
    assert judge(home, project) is Decision.FORBIDDEN
    bad = project / ".codex" / "rules" / "zz.policy"
    bad.write_text('\n\nprefix_rule(pattern = ["curl"], decision = "safe")\n')
    for _ in range(2):
        with pytest.raises(PolicyError, match=r"zz\.policy:3: .*may only tighten") as info:
            judge(home, project)
        assert info.value.exit_code == EXIT_SETUP
    assert len(builds) == 3 and len(list(directory(home).glob("*.json"))) == 1
    bad.unlink()
    bad.mkdir()  # unreadable: the same message load_file gives
    with pytest.raises(PolicyError, match=r"zz\.policy: cannot be read"):
        judge(home, project)


def test_a_codex_home_that_cannot_be_written_still_judges(
    tmp_path: Path, builds: list[list[str]]
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    for home in (not_a_directory / "codex", not_a_directory):
        assert judge(home) is Decision.FORBIDDEN
        assert judge(home, argv=["true"]) is Decision.SAFE
    assert len(builds) == 4


def test_a_codex_home_of_another_user_gets_no_cache_files(
    home: Path, monkeypatch: pytest.MonkeyPatch, builds: list[list[str]]
) -> None:
    """`sudo codex-box` keeping the user's CODEX_HOME must not leave root's files there."""
    monkeypatch.setattr(os, "geteuid", lambda: os.getuid() + 4242)
    assert judge(home) is Decision.FORBIDDEN and judge(home) is Decision.FORBIDDEN
    assert len(builds) == 2 and not (home / "cache").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through mode 0500")
def test_a_read_only_codex_home_judges_from_source_without_error(
    home: Path, builds: list[list[str]]
) -> None:
    home.chmod(0o500)
    try:
        assert judge(home) is Decision.FORBIDDEN and judge(home) is Decision.FORBIDDEN
    finally:
        home.chmod(0o700)
    assert len(builds) == 2 and not directory(home).exists()


def test_a_read_only_file_system_uses_the_entry_it_holds_or_none(
    tmp_path: Path, builds: list[list[str]]
) -> None:
    with small_tmpfs(tmp_path / "mnt", "1m") as mount:
        home = mount / "codex"
        assert judge(home) is Decision.FORBIDDEN  # written while writable
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        assert judge(home) is Decision.FORBIDDEN  # read back from the read-only entry
        assert len(builds) == 1
        assert judge(mount / "other") is Decision.FORBIDDEN  # nothing to read, none written
        assert len(builds) == 2


# --- concurrency and housekeeping --------------------------------------------------------

RACE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from orchestrator.policy import load_policy, loader
    home, go = Path(sys.argv[1]), Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.001)
    rules = load_policy(codex_home=home)
    print(rules == loader.build(loader.read_sources(codex_home=home, workspace=None)))
""")


def test_concurrent_launches_leave_one_key_and_a_valid_entry(
    tmp_path: Path, builds: list[list[str]]
) -> None:
    home, go = tmp_path / "codex", tmp_path / "go"
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(home), str(go)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    time.sleep(0.5)  # every racer imported and waiting
    go.touch()
    assert [r.communicate(timeout=60)[0].split() for r in racers] == [["True"]] * 6
    assert sorted(p.name for p in directory(home).iterdir()) == [".key", entry_file(home).name]
    assert judge(home) is Decision.FORBIDDEN and not builds  # the entry verifies


def test_only_the_newest_entries_are_kept(
    home: Path, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    rule = project / ".codex" / "rules" / "no-push.policy"
    for n in range(5):
        rule.write_text(PROJECT_RULE + f"# edit {n}\n")
        judge(home, project)
    assert len(list(directory(home).glob("*.json"))) == 3


def test_a_rule_file_whose_path_is_not_utf8_is_cached_too(
    home: Path, tmp_path: Path, builds: list[list[str]]
) -> None:
    project = tmp_path / os.fsdecode(b"proj-\xff")
    (project / ".codex" / "rules").mkdir(parents=True)
    (project / ".codex" / "rules" / "no-push.policy").write_text(PROJECT_RULE)
    assert judge(home, project, ["git", "push"]) is Decision.FORBIDDEN
    assert judge(home, project, ["git", "push"]) is Decision.FORBIDDEN
    assert len(builds) == 1
    rules = load_policy(codex_home=home, workspace=project)
    assert rules.files[-1] == str(project / ".codex" / "rules" / "no-push.policy")
