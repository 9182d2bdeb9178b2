"""What the policy judges from the place a command runs rather than from its words
(issue 17): the file a bare program name resolves to through the sandbox's PATH, the
startup files a shell reads, and the configuration git reads — a repository's own
``config`` can make ``git status`` run any program.

Each context is a real temporary tree: ``ws`` (the writable workspace, its ``.git``
protected), ``home`` (not writable) and a private ``tmp`` root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.host.gitrepo import MAX_CONFIG_BYTES, inspect
from orchestrator.policy import Context, Decision, Evaluation, Policy, load_policy

SAFE, MATCH, UNVERIFIED = Decision.SAFE, Decision.MATCH, Decision.UNVERIFIED
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return Policy(load_policy())


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    base = Path(os.path.realpath(tmp_path))
    ws, home, tmp = base / "ws", base / "home", base / "tmp"
    for directory in (ws / ".git", ws / "bin", ws / "sub" / "deeper", home, tmp):
        directory.mkdir(parents=True)
    return {"ws": ws, "home": home, "tmp": tmp}


def context(tree: dict[str, Path], *, cwd: Path | None = None, **env: str) -> Context:
    ws = tree["ws"]
    return Context(
        cwd=str(cwd or ws),
        home=str(tree["home"]),
        writable_roots=(str(ws), str(tree["tmp"])),
        protected_paths=(str(ws / ".git"),),
        env=tuple({"PATH": SYSTEM_PATH, "HOME": str(tree["home"]), **env}.items()),
    )


def reasons(evaluation: Evaluation) -> str:
    return "\n".join(f.reason for f in evaluation.deciding())


def repo(at: Path, config: str, *, name: str = "config") -> Path:
    """A git directory layout (HEAD, objects, refs) at ``at`` with ``config``."""
    for sub in ("objects", "refs"):
        (at / sub).mkdir(parents=True, exist_ok=True)
    (at / "HEAD").write_text("ref: refs/heads/main\n")
    (at / name).write_text(config)
    return at / name


# --- PATH ------------------------------------------------------------------------------


def test_a_program_found_through_a_path_entry_in_a_writable_root_is_unverified_naming_it(
    policy: Policy, tree: dict[str, Path]
) -> None:
    planted = tree["ws"] / "bin" / "ls"
    planted.write_text("#!/bin/sh\ntouch pwned\n")
    planted.chmod(0o755)
    ctx = context(tree, PATH=f"{tree['ws']}/bin:{SYSTEM_PATH}")
    evaluation = policy.evaluate(["ls"], ctx)
    assert evaluation.decision is UNVERIFIED
    assert f"{planted} (a file planted there runs instead)" in reasons(evaluation)


def test_a_writable_path_entry_ahead_of_the_program_counts_even_before_anything_is_planted(
    policy: Policy, tree: dict[str, Path]
) -> None:
    ctx = context(tree, PATH=f"{tree['tmp']}/bin:{SYSTEM_PATH}")
    evaluation = policy.evaluate(["bash", "-c", "cp a bin/ls; ls"], ctx)
    assert evaluation.decision is UNVERIFIED
    assert f"{tree['tmp']}/bin/ls" in reasons(evaluation)


@pytest.mark.parametrize("path", [f":{SYSTEM_PATH}", f"{SYSTEM_PATH}:", f".:{SYSTEM_PATH}",
                                  f"bin:{SYSTEM_PATH}", f"/opt/none-xyz::{SYSTEM_PATH}"])
def test_a_relative_or_empty_path_entry_before_the_program_is_unverified(
    policy: Policy, tree: dict[str, Path], path: str
) -> None:
    # A trailing empty entry only counts for a program found nowhere before it.
    argv = ["no-such-program-xyz"] if path.endswith(":") else ["ls"]
    evaluation = policy.evaluate(argv, context(tree, PATH=path))
    assert evaluation.decision is UNVERIFIED
    assert "a relative entry" in reasons(evaluation)


def test_wrappers_and_shells_are_looked_up_too_but_a_shell_builtin_is_not(
    policy: Policy, tree: dict[str, Path]
) -> None:
    late = context(tree, PATH=f"{SYSTEM_PATH}:{tree['ws']}/bin")
    assert policy.evaluate(["env", "ls"], late).decision is SAFE
    early = context(tree, PATH=f"{tree['ws']}/bin:{SYSTEM_PATH}")
    assert f"'env' up in {tree['ws']}/bin" in reasons(policy.evaluate(["env", "ls"], early))
    # echo inside bash is bash's own: only bash itself is looked up.
    evaluation = policy.evaluate(["/bin/bash", "-c", "echo hi; pwd"], early)
    assert evaluation.decision is SAFE, reasons(evaluation)
    assert "'cat'" in reasons(policy.evaluate(["/bin/bash", "-c", "command cat a"], early))


def test_the_ordinary_path_keeps_ordinary_commands_safe(
    policy: Policy, tree: dict[str, Path]
) -> None:
    ctx = context(tree)
    for argv in (["ls"], ["git", "status"], ["sort", "a"], ["xargs", "-n1", "echo"],
                 ["bash", "-lc", "ls && git status"]):
        evaluation = policy.evaluate(argv, ctx)
        assert evaluation.decision is SAFE, (argv, reasons(evaluation))


# --- shell startup files ------------------------------------------------------------------


def test_a_login_shell_whose_profile_lies_in_a_writable_root_is_unverified(
    policy: Policy, tree: dict[str, Path]
) -> None:
    ctx = context(tree, HOME=str(tree["tmp"]))
    evaluation = policy.evaluate(["bash", "-lc", "ls"], ctx)
    assert evaluation.decision is UNVERIFIED
    assert f"bash -l reads {tree['tmp']}/.bash_profile" in reasons(evaluation)
    assert policy.evaluate(["bash", "-c", "ls"], ctx).decision is SAFE  # not a login shell
    assert policy.evaluate(["bash", "--login", "-c", "ls"], ctx).decision is UNVERIFIED


def test_bash_env_in_a_writable_root_or_expanded_is_unverified(
    policy: Policy, tree: dict[str, Path]
) -> None:
    planted = policy.evaluate(["bash", "-c", "ls"], context(tree, BASH_ENV="rc.sh"))
    assert f"reads {tree['ws']}/rc.sh" in reasons(planted)
    expanded = policy.evaluate(["bash", "-c", "ls"], context(tree, BASH_ENV="$HOME/rc"))
    assert "is expanded by bash" in reasons(expanded)
    mine = policy.evaluate(["bash", "-c", "ls"], context(tree, BASH_ENV=str(tree["home"])))
    assert mine.decision is SAFE


# --- git repository configuration -------------------------------------------------------

# Which keys run a program, and how the text is read, is tested once against the one
# reader (test_planted); here, that the policy reads the files git reads and says so.
EXECUTING = [
    "[core]\n\tfsmonitor = touch pwned\n",
    '[includeIf "gitdir:/"]\n\tpath = other.cfg\n',
    "[user]\n\tname = x\n[core]\n\tbare = false\n\tfsmonitor = x\n",
]


@pytest.mark.parametrize("config", EXECUTING, ids=[c.replace("\n", " ") for c in EXECUTING])
def test_git_status_is_unverified_when_the_repository_config_sets_an_executing_key(
    policy: Policy, tree: dict[str, Path], config: str
) -> None:
    sub = tree["ws"] / "sub"
    path = repo(sub / ".git", config)
    evaluation = policy.evaluate(["git", "status"], context(tree, cwd=sub / "deeper"))
    assert evaluation.decision is UNVERIFIED
    assert f"git reads {path}, which sets " in reasons(evaluation)


@pytest.mark.parametrize(
    "config",
    ["[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
     '[remote "origin"]\n\turl = https://example.invalid/x\n[branch "main"]\n\tremote = origin\n',
     "[core]\n\tfsmonitor = false\n", "[pager]\n\tlog = false\n", ""],
)
def test_git_status_stays_safe_with_an_ordinary_repository_config(
    policy: Policy, tree: dict[str, Path], config: str
) -> None:
    repo(tree["ws"] / "sub" / ".git", config)
    evaluation = policy.evaluate(["git", "status"], context(tree, cwd=tree["ws"] / "sub"))
    assert evaluation.decision is SAFE, reasons(evaluation)


@pytest.mark.parametrize(
    "config", ["[core]\n\tpager = \"unterminated\n", "fsmonitor = x\n"]
)
def test_a_config_git_would_not_parse_is_unverified_not_skipped(
    policy: Policy, tree: dict[str, Path], config: str
) -> None:
    repo(tree["ws"] / "sub" / ".git", config)
    evaluation = policy.evaluate(["git", "log"], context(tree, cwd=tree["ws"] / "sub"))
    assert evaluation.decision is UNVERIFIED
    assert "cannot be read with confidence" in reasons(evaluation)


def test_a_bare_layout_a_gitfile_and_a_worktree_commondir_are_found_as_git_finds_them(
    policy: Policy, tree: dict[str, Path]
) -> None:
    ws = tree["ws"]
    bare = ws / "bare"
    repo(bare, "[core]\n\tpager = x\n")
    assert "bare/config" in reasons(policy.evaluate(["git", "log"], context(tree, cwd=bare)))
    target = repo(tree["tmp"] / "elsewhere", "[diff]\n\texternal = x\n")
    (ws / "sub" / ".git").write_text(f"gitdir: {target.parent}\n")
    evaluation = policy.evaluate(["git", "diff"], context(tree, cwd=ws / "sub"))
    assert str(target) in reasons(evaluation)
    common = repo(tree["tmp"] / "main", "[core]\n\tfsmonitor = x\n")
    worktree = tree["tmp"] / "main" / "worktrees" / "w"
    worktree.mkdir(parents=True)
    (worktree / "commondir").write_text("../..\n")
    (ws / "sub" / ".git").write_text(f"gitdir: {worktree}\n")
    evaluation = policy.evaluate(["git", "status"], context(tree, cwd=ws / "sub"))
    assert str(common) in reasons(evaluation)


def test_config_worktree_counts_as_well(policy: Policy, tree: dict[str, Path]) -> None:
    repo(tree["ws"] / "sub" / ".git", "[core]\n\tbare = false\n")
    (tree["ws"] / "sub" / ".git" / "config.worktree").write_text("[core]\n\tpager = x\n")
    evaluation = policy.evaluate(["git", "log"], context(tree, cwd=tree["ws"] / "sub"))
    assert "config.worktree, which sets core.pager" in reasons(evaluation)


def test_a_cd_on_the_line_moves_where_git_looks(policy: Policy, tree: dict[str, Path]) -> None:
    repo(tree["ws"] / "sub" / ".git", "[core]\n\tfsmonitor = x\n")
    assert policy.evaluate(["git", "status"], context(tree)).decision is SAFE
    evaluation = policy.evaluate(["bash", "-c", "cd sub && git status"], context(tree))
    assert evaluation.decision is UNVERIFIED


def test_git_options_and_environment_that_choose_the_repository_are_followed(
    tree: dict[str, Path],
) -> None:
    config = repo(tree["tmp"] / "r", "[core]\n\tpager = x\n")
    where = {"home": str(tree["home"]), "writable": None}
    ws = str(tree["ws"])
    for argv, env in [(["git", "-C", str(tree["tmp"] / "r"), "log"], {}),
                      (["git", f"--git-dir={config.parent}", "log"], {}),
                      (["git", "--git-dir", str(config.parent), "log"], {}),
                      (["git", "log"], {"GIT_DIR": str(config.parent)})]:
        found = inspect(argv, cwd=ws, env=env, **where)  # type: ignore[arg-type]
        assert found.problem and str(config) in found.problem, argv
    given = inspect(["git", "-c", "core.fsmonitor=./x", "status"], cwd=ws, env={}, **where)  # type: ignore[arg-type]
    assert given.problem == "git -c core.fsmonitor runs a program"


def test_a_global_config_is_judged_only_when_the_sandbox_can_write_it(
    policy: Policy, tree: dict[str, Path]
) -> None:
    (tree["home"] / ".gitconfig").write_text("[core]\n\tpager = less\n")
    assert policy.evaluate(["git", "log"], context(tree)).decision is SAFE  # the user's own
    (tree["tmp"] / ".gitconfig").write_text("[core]\n\tpager = sh -c x\n")
    evaluation = policy.evaluate(["git", "log"], context(tree, HOME=str(tree["tmp"])))
    assert evaluation.decision is UNVERIFIED
    assert f"{tree['tmp']}/.gitconfig, which sets core.pager" in reasons(evaluation)


def test_an_oversized_config_or_a_fifo_is_unverified_and_never_read_in_full(
    policy: Policy, tree: dict[str, Path]
) -> None:
    git = tree["ws"] / "sub" / ".git"
    repo(git, "[core]\n" + "\t# padding\n" * (MAX_CONFIG_BYTES // 10))
    big = policy.evaluate(["git", "status"], context(tree, cwd=tree["ws"] / "sub"))
    assert "is larger than" in reasons(big)
    (git / "config").unlink()
    os.mkfifo(git / "config")
    fifo = policy.evaluate(["git", "status"], context(tree, cwd=tree["ws"] / "sub"))
    assert "is not a regular file" in reasons(fifo)


def test_the_git_neutralising_environment_keeps_the_users_own_settings_first() -> None:
    from orchestrator.host.gitenv import neutralise

    assert neutralise({}) == {
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "core.fsmonitor", "GIT_CONFIG_VALUE_0": "false",
        "GIT_CONFIG_KEY_1": "core.hooksPath", "GIT_CONFIG_VALUE_1": "/dev/null",
    }
    mine = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "user.name",
            "GIT_CONFIG_VALUE_0": "me"}
    got = neutralise(mine)
    assert got["GIT_CONFIG_COUNT"] == "3" and got["GIT_CONFIG_KEY_0"] == "user.name"
    assert got["GIT_CONFIG_KEY_1"] == "core.fsmonitor"
    assert neutralise({"GIT_CONFIG_COUNT": "x"}) == {"GIT_CONFIG_COUNT": "x"}
