"""The pipeline of DESIGN.md §2 as one library call: resolve → compile → select → audit → run.

Owns: the order of the steps, the trusted opt-in, and the audit records around a launch
(one when it is decided, allowed or denied; one when it ends).
Does not own: printing, exiting or asking questions (``cli`` passes ``confirm``).

Every refusal after the command line is known is audited before it is raised, and if
the decision record cannot be written nothing is launched.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shlex
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.audit.log import LOG_NAME, AuditLog, Sanitizer
from orchestrator.audit.sinks import sinks_for
from orchestrator.backends import base
from orchestrator.compile import placeholders
from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core.errors import AuditError, CodexBoxError, Refused, SandboxSetupError
from orchestrator.core.profile import PlantedRepo
from orchestrator.core.spec import RunResult, SandboxSpec
from orchestrator.policy import gate
from orchestrator.profiles.store import ProfileStore
from orchestrator.resolve.precedence import Resolution, resolve_profile
from orchestrator.settings.config import Config, codex_home, load_config

from .postrun import PostRunCheck, report

Confirm = Callable[[str], bool | None]  # None: nobody can be asked (no terminal)
SESSION_ENV = "CODEX_BOX_SESSION"
BACKEND_ENV = "CODEX_BOX_BACKEND"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    argv: tuple[str, ...]
    environ: Mapping[str, str]
    cwd: str
    profile: str | None = None
    workspace: str | None = None
    backend: str | None = None  # flag; else CODEX_BOX_BACKEND, config, "auto"
    env_names: tuple[str, ...] = ()
    timeout: str | None = None
    memory: str | None = None
    pids: str | None = None
    cpus: str | None = None
    image: str | None = None
    tty: bool = False
    trust_opt_in: bool = False
    approve: bool = False  # run an unverified command without asking (audited)
    policy_mode: str | None = None  # flag; else config [policy] mode, else "enforce"


@dataclass(frozen=True, slots=True, kw_only=True)
class Prepared:
    resolution: Resolution
    spec: SandboxSpec
    backend: base.Backend
    selection: base.Selection
    verdict: gate.Verdict | None = None  # None: the policy was not consulted (--print-spec)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    prepared: Prepared
    result: RunResult
    # One line each, for stderr: what the post-run check found (planted repositories).
    warnings: tuple[str, ...] = ()


def new_id() -> str:
    return uuid.uuid4().hex[:12]


class Runner:
    def __init__(self, request: RunRequest, *, confirm: Confirm | None = None) -> None:
        self.request = request
        self.confirm = confirm
        self.home = codex_home(request.environ)
        self.session_id = request.environ.get(SESSION_ENV) or new_id()
        self.run_id = new_id()
        user_home = request.environ.get("HOME") or str(Path.home())
        self.audit = AuditLog(
            self.home / LOG_NAME, sanitizer=Sanitizer(user=_user_name(), home=user_home)
        )
        self._resolution: Resolution | None = None
        self._unaudited = 0  # egress proxy refusals whose record failed
        self._loaded_config: Config | None = None
        self._base_record: dict[str, Any] = {
            "operation": "command_exec",
            "target": shlex.join(request.argv),
            "session_id": self.session_id,
            "run_id": self.run_id,
        }

    @property
    def resolution(self) -> Resolution | None:
        """The profile resolution once ``compile`` got that far (also when a later step
        failed): its warnings are worth showing either way."""
        return self._resolution

    def prepare(self, *, probe: bool = True, audit: bool = True, policy: bool = True) -> Prepared:
        """Everything up to (not including) launching; refusals are audited.

        ``probe=False`` (``--print-spec``) skips checking that a *named* backend can run
        here: showing what it would do needs no kernel feature. ``auto`` always probes.
        ``audit=False`` is for questions (``--show-profile``) that launch nothing;
        ``policy=False`` skips the execution policy (nothing will be launched).
        """
        try:
            return self._prepare(probe=probe, policy=policy)
        except CodexBoxError as exc:
            if audit:
                self._record_denied(exc)
            raise

    def run(self, prepared: Prepared | None = None) -> Outcome:
        prepared = prepared or self.prepare()
        spec = prepared.spec
        described = self._describe(prepared)
        self._write(
            {
                **described,
                "operation": "profile_resolve",
                "decision": "allowed",
                "target": spec.profile,
                "reason": f"{prepared.resolution.describe()}; "
                f"chain: {prepared.resolution.chain_text()}",
            }
        )
        if prepared.resolution.grant is not None:  # every run an elevation is used for
            from orchestrator.resolve.elevation import record_used

            self._write({**record_used(prepared.resolution.grant), **described})
        skipped = prepared.selection.skipped
        self._write(
            {
                **described,
                "operation": "backend_select",
                "decision": "allowed",
                "target": prepared.backend.name,
                "reason": prepared.selection.why
                + (f" (skipped: {'; '.join(skipped)})" if skipped else ""),
            }
        )
        self._write(
            {
                **self._describe(prepared),
                "phase": "decided",
                "decision": "allowed",
                "reason": f"profile {spec.profile} ({prepared.resolution.describe()})",
            }
        )
        quarantine = prepared.resolution.profile.on_planted_repo is PlantedRepo.QUARANTINE
        post_run = PostRunCheck(spec, quarantine_id=self.run_id if quarantine else None)
        try:
            with (
                placeholders.held(
                    spec.workspace,
                    spec.protected_paths,
                    state_dir=self.home / "run",
                    identity=spec.identity_of(spec.workspace),
                ),
                self._egress(prepared) as egress,
            ):
                result = prepared.backend.run(spec, egress=egress)
        except CodexBoxError as exc:
            post_run.close()  # nothing ran: nothing to look for
            self._write(
                {
                    **self._describe(prepared),
                    "operation": "sandbox_setup",
                    "phase": "ended",
                    "decision": "denied",
                    "reason": f"sandbox setup failed: {exc.one_line()}",
                }
            )
            raise
        # Right after the run (and before any record that could fail): a quarantine
        # must not wait on the audit log.
        findings, problems = post_run.finish()
        self._write(
            {
                **self._describe(prepared),
                "phase": "ended",
                "decision": "allowed",
                "reason": _ended(result)
                + (
                    f"; {self._unaudited} egress refusals could not be audited"
                    if self._unaudited
                    else ""
                ),
                "exit_code": result.exit_code,
                "signal": result.signal,
                "timed_out": result.timed_out,
                "oom_killed": result.oom_killed,
                "duration_ms": round(result.duration_s * 1000),
            }
        )
        warnings = report(findings, problems, write=self._write, described=self._describe(prepared))
        return Outcome(prepared=prepared, result=result, warnings=warnings)

    @contextlib.contextmanager
    def _egress(self, prepared: Prepared) -> Iterator[base.EgressPort | None]:
        """The egress proxy for the run, when its profile filters the network; each
        connection it refuses becomes a ``network_connect`` record."""
        spec = prepared.spec
        if spec.egress is None:
            yield None
            return
        from orchestrator.netproxy.session import ProxySession  # asyncio and TLS only when needed

        described = self._describe(prepared)

        def refused(fields: dict[str, Any]) -> None:
            self._write(
                {**described, **fields, "operation": "network_connect", "decision": "denied"}
            )

        with ProxySession(spec.egress, run_id=self.run_id, audit=refused) as session:
            try:
                yield session
            finally:
                self._unaudited = session.audit_failures

    def _prepare(self, *, probe: bool, policy: bool) -> Prepared:
        resolution, spec = self.compile()
        req = self.request
        config = self._config()
        # Before any backend is chosen: a refused command never waits on an engine.
        verdict = self.judge(spec) if policy else None
        requested = req.backend or req.environ.get(BACKEND_ENV) or config.backend or "auto"
        if probe or requested == "auto":
            selection = base.select(requested, spec)
        else:  # --print-spec of a named backend: show its request even if it cannot run here
            selection = base.Selection(base.load(requested), f"{requested}: named, not probed")
        return Prepared(
            resolution=resolution,
            spec=spec,
            backend=selection.backend,
            selection=selection,
            verdict=verdict,
        )

    def judge(self, spec: SandboxSpec) -> gate.Verdict:
        """The execution policy's verdict; raises Refused for forbidden, or unverified
        without approval (an approval asked is recorded either way)."""
        req = self.request
        return gate.decide(
            spec,
            mode=gate.policy_mode(req.policy_mode, self._config().policy_mode),
            home=req.environ.get("HOME") or str(Path.home()),
            codex_home=self.home,
            approve=req.approve,
            confirm=self.confirm,
            record=self._write,
        )

    def _config(self) -> Config:
        """config.toml, read once per run (compile and backend selection both need it).
        Its [audit] settings apply from here on (a config that does not load is itself
        recorded with the defaults)."""
        if self._loaded_config is None:
            self._loaded_config = load_config(self.home)
            settings = self._loaded_config.audit
            self.audit = AuditLog(
                self.audit.path,
                sanitizer=self.audit.sanitize,
                max_bytes=settings.max_bytes,
                keep=settings.keep,
                sinks=sinks_for(settings),
            )
        return self._loaded_config

    def compile(self) -> tuple[Resolution, SandboxSpec]:
        """The profile that applies and the spec it becomes; no backend is chosen."""
        req = self.request
        config = self._config()
        try:
            workspace = os.path.realpath(os.path.join(req.cwd, req.workspace or "."))
        except OSError as exc:  # a component swapped between a link and a directory
            raise SandboxSetupError(
                f"workspace {req.workspace or req.cwd} changed while codex-box resolved it "
                f"({exc.strerror})",
                hint="nothing was run; another process is renaming it — run again",
            ) from exc
        resolution = resolve_profile(
            flag=req.profile,
            environ=req.environ,
            workspace=Path(workspace),
            config=config,
            store=ProfileStore(codex_home=self.home),
            codex_home=self.home,
        )
        self._resolution = resolution
        if resolution.ignored_grants:  # tampered, copied, expired: each on the record
            from orchestrator.resolve.elevation import record_ignored

            for ignored in resolution.ignored_grants:
                self._write(record_ignored(ignored))
        if resolution.ignored_files:  # wider than what applies without it, not approved
            from orchestrator.resolve.approval import record_ignored as record_ignored_file

            for check in resolution.ignored_files:
                self._write(record_ignored_file(check))
        # A grant made with --yes-i-trust-this-workspace is the opt-in: at the command
        # line (elevate), for this workspace, for a while.
        granted = resolution.grant is not None and resolution.grant.opt_in
        if resolution.profile.requires_opt_in and not req.trust_opt_in and not granted:
            question = (
                f"Profile '{resolution.profile.name}' runs with NO sandbox: full "
                f"filesystem, network and process access. Trust {workspace}?"
            )
            if self.confirm is None or not self.confirm(question):
                raise Refused(
                    f"profile '{resolution.profile.name}' needs explicit opt-in "
                    f"(chosen by {resolution.describe()})",
                    hint="add --yes-i-trust-this-workspace, or confirm at the prompt",
                )
        spec = compile_spec(
            resolution.profile,
            Request(
                argv=req.argv,
                # As given: compile resolves it itself, refusing a planted symlink.
                workspace=os.path.join(req.cwd, req.workspace or "."),
                cwd=req.cwd,
                environ=req.environ,
                home=req.environ.get("HOME") or str(Path.home()),
                codex_home=str(self.home),
                uid=os.getuid(),
                gid=os.getgid(),
                run_id=self.run_id,
                session_id=self.session_id,
                env_names=req.env_names,
                timeout=req.timeout,
                memory=req.memory,
                pids=req.pids,
                cpus=req.cpus,
                image=req.image,
                tty=req.tty,
                network=config.network,
            ),
        )
        return resolution, spec

    def _describe(self, prepared: Prepared) -> dict[str, Any]:
        return {
            "profile": prepared.spec.profile,
            "profile_source": prepared.resolution.source.value,
            "backend": prepared.backend.name,
            "workspace": prepared.spec.workspace,
            **(prepared.verdict.fields() if prepared.verdict else {}),
        }

    def _record_denied(self, exc: CodexBoxError) -> None:
        resolution = self._resolution
        extra = (
            {"profile": resolution.profile.name, "profile_source": resolution.source.value}
            if resolution
            else {}
        )
        extra |= exc.fields if isinstance(exc, gate.PolicyRefused) else {}
        try:
            self._write(
                {**extra, "phase": "decided", "decision": "denied", "reason": exc.one_line()}
            )
        except AuditError as audit_exc:
            if isinstance(exc, AuditError):
                return
            raise audit_exc from exc

    def _write(self, record: dict[str, Any]) -> None:
        self.audit.append({**self._base_record, **record})


def _ended(result: RunResult) -> str:
    if result.detail:
        return result.detail
    if result.signal:
        return f"killed by signal {result.signal}"
    return f"exited {result.exit_code}"


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""
