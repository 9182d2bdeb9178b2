"""The pipeline of DESIGN.md §2 as one library call: resolve → compile → select → audit → run.

Owns: the order of the steps (the opt-in is asked before compiling, the policy judges
before any backend is chosen) and when each audit record of a launch is written (one when
it is decided, allowed or denied; one when it ends; their fields are ``audit.records``).
Does not own: printing, exiting or asking questions (the front door passes ``confirm``),
the host's facts (``HostContext``), choosing a backend (``selection``).

Every refusal after the command line is known is audited before it is raised, and if
the decision record cannot be written nothing is launched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.audit import records
from orchestrator.backends import base
from orchestrator.compile import placeholders
from orchestrator.compile.spec import Request, compile_spec
from orchestrator.core import failpoints
from orchestrator.core.errors import AuditError, Cancelled, CodexBoxError, SandboxSetupError
from orchestrator.core.options import Confirm, LaunchOptions
from orchestrator.core.profile import PlantedRepo
from orchestrator.core.spec import RunResult, SandboxSpec
from orchestrator.policy import gate, optin
from orchestrator.resolve.precedence import Resolution

from .context import HostContext, new_id
from .postrun import PostRunCheck, report
from .selection import choose

if TYPE_CHECKING:  # the proxy (asyncio, TLS) loads only for a run that filters egress
    from orchestrator.netproxy.session import CredentialUse, Refusal


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRequest:
    """What one caller asks for; the host it runs on is the ``HostContext``."""

    argv: tuple[str, ...]
    profile: str | None = None
    workspace: str | None = None
    backend: str | None = None  # flag; else CODEX_BOX_BACKEND, config, "auto"
    options: LaunchOptions = field(default_factory=LaunchOptions)
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


class Runner:
    def __init__(
        self,
        context: HostContext,
        request: RunRequest,
        *,
        confirm: Confirm | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        """``cancelled``: asked right before launching (True: nothing is launched) and
        after the end (True: the end is recorded as cancelled) — the caller went away
        (``serve``'s client disconnected) and stopped the command with a signal."""
        self.context = context
        self.request = request
        self.confirm = confirm
        self.home = context.home
        self.session_id = context.session_id
        self.run_id = new_id()
        self.cancelled = cancelled or (lambda: False)
        # True while the backend waits for the command: a signal to stop it may come
        # (``forked_run``'s cancel); outside, it would cut a record short.
        self.in_backend = False
        self.audit = context.audit_log(strict=False)  # a bad config.toml: still recorded
        self._resolution: Resolution | None = None
        self._unaudited = 0  # egress proxy refusals whose record failed
        self._credential_uses: list[CredentialUse] = []  # brokered secrets injected
        self._ids = {"session_id": self.session_id, "run_id": self.run_id}
        self.audit_seqs: list[int] = []  # each record this launch wrote (its result cites them)

    @property
    def resolution(self) -> Resolution | None:
        """The profile resolution once ``compile`` got that far (also when a later step
        failed): its warnings are worth showing either way."""
        return self._resolution

    def prepare(self, *, probe: bool = True, audit: bool = True, policy: bool = True) -> Prepared:
        """Everything up to (not including) launching; refusals are audited.

        ``probe=False`` (``--print-spec``) keeps a *named* backend even when it cannot run
        here: showing what it would do needs no kernel feature. ``auto`` must find one.
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
        spec, resolution, argv = prepared.spec, prepared.resolution, self.request.argv
        launch = self._launch(prepared)
        decided = [
            records.profile_resolved(
                launch=launch, chosen_by=resolution.describe(), chain=resolution.chain_text()
            )
        ]
        grant = resolution.grant
        if grant is not None:  # every run an elevation is used for
            decided.append(
                records.elevation_used(
                    launch=launch,
                    profile=grant.profile,
                    grant=grant.describe(),
                    expires=grant.expires,
                )
            )
        selection = prepared.selection
        decided.append(
            records.backend_selected(launch=launch, why=selection.why, skipped=selection.skipped)
        )
        decided.append(
            records.command_allowed(argv=argv, launch=launch, chosen_by=resolution.describe())
        )
        # One write and one fsync for the launch's decision: all of it is on disk, or
        # (AuditError) none of it and nothing is launched.
        self._write(*decided)
        failpoints.reach("decided")
        if self.cancelled():
            error = Cancelled("the run was cancelled before its command started")
            self._write(records.sandbox_setup_failed(argv=argv, launch=launch, error=error.message))
            raise error
        quarantine = resolution.profile.on_planted_repo is PlantedRepo.QUARANTINE
        post_run = PostRunCheck(spec, quarantine_id=self.run_id if quarantine else None)
        try:
            with (
                placeholders.held(
                    spec.workspace,
                    spec.protected_paths,
                    state_dir=self.home / "run",
                    identity=spec.identity_of(spec.workspace),
                ),
                self._egress(prepared, launch) as egress,
            ):
                self.in_backend = True
                try:
                    result = prepared.backend.run(spec, selection.facts, egress=egress)
                finally:
                    self.in_backend = False
        except CodexBoxError as exc:
            post_run.close()  # nothing ran: nothing to look for
            self._write(
                records.sandbox_setup_failed(argv=argv, launch=launch, error=exc.one_line())
            )
            raise
        # Right after the run (and before any record that could fail): a quarantine
        # must not wait on the audit log.
        findings, problems = post_run.finish()
        try:
            self._write(
                records.command_ended(
                    argv=argv,
                    launch=launch,
                    result=result,
                    unaudited=self._unaudited,
                    credentials=self._credential_uses,
                    cancelled=self.cancelled(),
                )
            )
        except AuditError as exc:
            # The command ran (its decision is on disk); only its end is missing. Say
            # how it ended, since the exit code is now codex-box's 125.
            raise AuditError(
                f"{exc.message}; the command ran and exited {result.exit_code}, "
                "but its end is not in the audit log",
                hint=exc.hint,
            ) from exc
        warnings = report(findings, problems, write=self._write, launch=launch)
        return Outcome(prepared=prepared, result=result, warnings=warnings)

    @contextlib.contextmanager
    def _egress(
        self, prepared: Prepared, launch: records.Launch
    ) -> Iterator[base.EgressPort | None]:
        """The egress proxy for the run, when its profile filters the network; each
        connection it refuses becomes a ``network_connect`` record."""
        spec = prepared.spec
        if spec.egress is None:
            yield None
            return
        from orchestrator.netproxy.session import ProxySession  # asyncio and TLS only when needed

        from .credentials import secret_values

        def refused(refusal: Refusal) -> None:
            self._write(records.egress_refused(launch=launch, refusal=refusal))

        values = secret_values(spec, self.context)
        with ProxySession(
            spec.egress, run_id=self.run_id, audit=refused, secret_values=values
        ) as session:
            try:
                yield session
            finally:
                self._unaudited = session.audit_failures
        # Read once the proxy's thread has stopped: nothing adds to the counts any more.
        self._credential_uses = session.credential_uses()

    def _prepare(self, *, probe: bool, policy: bool) -> Prepared:
        resolution, spec = self.compile()
        # Before any backend is chosen: a refused command never waits on an engine.
        verdict = self.judge(spec) if policy else None
        selection = choose(self.context, self.request.backend, spec, probe=probe)
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
            mode=gate.policy_mode(req.policy_mode, self.context.config.policy_mode),
            home=self.context.user_home,
            codex_home=self.home,
            approve=req.approve,
            confirm=self.confirm,
            record=self._write,
        )

    def compile(self, *, preview: bool = False) -> tuple[Resolution, SandboxSpec]:
        """The profile that applies and the spec it becomes; no backend is chosen.
        ``preview``: for a question that launches nothing (no command needed)."""
        req = self.request
        context = self.context
        try:
            workspace = context.resolved_workspace(req.workspace)
        except OSError as exc:  # a component swapped between a link and a directory
            raise SandboxSetupError(
                f"workspace {req.workspace or context.cwd} changed while codex-box resolved it "
                f"({exc.strerror})",
                hint="nothing was run; another process is renaming it — run again",
            ) from exc
        resolution = context.resolve(req.profile, workspace)
        self._resolution = resolution
        for ignored in resolution.ignored_grants:  # tampered, copied, expired: each recorded
            self._write(
                records.elevation_ignored(
                    profile=ignored.profile,
                    workspace=ignored.workspace,
                    path=str(ignored.path),
                    why=ignored.why,
                )
            )
        for check in resolution.ignored_files:  # wider than what applies without it
            self._write(records.profile_file_ignored(path=str(check.path), why=check.why()))
        optin.require(
            resolution.profile,
            chosen_by=resolution.describe(),
            trusted=req.trust_opt_in,
            granted=resolution.grant is not None and resolution.grant.opt_in,
            workspace=workspace,
            confirm=self.confirm,
        )
        spec = compile_spec(resolution.profile, self._compile_request(), preview=preview)
        return resolution, spec

    def _compile_request(self) -> Request:
        context = self.context
        return Request(
            argv=self.request.argv,
            # As given: compile resolves it itself, refusing a planted symlink.
            workspace=context.workspace_path(self.request.workspace),
            cwd=context.cwd,
            environ=context.environ,
            home=context.user_home,
            codex_home=str(self.home),
            uid=context.uid,
            gid=context.gid,
            run_id=self.run_id,
            session_id=self.session_id,
            options=self.request.options,
            network=context.config.network,
            secrets=context.config.secrets,
        )

    def _launch(self, prepared: Prepared) -> records.Launch:
        verdict = prepared.verdict
        return records.Launch(
            profile=prepared.spec.profile,
            profile_source=prepared.resolution.source.value,
            backend=prepared.backend.name,
            workspace=prepared.spec.workspace,
            policy=verdict.policy if verdict else None,
        )

    def refuse(self, exc: CodexBoxError) -> None:
        """Record a refusal the front door made before ``prepare`` (a devcontainer.json
        key the profile refuses): every refused launch leaves its audit record."""
        self._record_denied(exc)

    def _record_denied(self, exc: CodexBoxError) -> None:
        resolution = self._resolution
        try:
            self._write(
                records.command_denied(
                    argv=self.request.argv,
                    error=exc.one_line(),
                    profile=resolution.profile.name if resolution else None,
                    profile_source=resolution.source.value if resolution else None,
                    policy=exc.policy if isinstance(exc, gate.PolicyRefused) else None,
                )
            )
        except AuditError as audit_exc:
            if isinstance(exc, AuditError):
                return
            raise audit_exc from exc

    def result(self, outcome: Outcome) -> dict[str, Any]:
        """The result contract of this run (``views.result_dict``)."""
        from .views import result_dict

        verdict = outcome.prepared.verdict
        return result_dict(
            outcome.result,
            run_id=self.run_id,
            session_id=self.session_id,
            profile=outcome.prepared.spec.profile,
            decision=verdict.policy.decision if verdict is not None else None,
            audit=self.audit_seqs,
        )

    def _write(self, *batch: dict[str, Any]) -> None:
        """Append ``batch`` to the audit log as one write (one fsync), in order."""
        self.audit_seqs += self.audit.append_many([self._with_ids(record) for record in batch])

    def _with_ids(self, record: dict[str, Any]) -> dict[str, Any]:
        # The log's field order as before: what and on what first, then whose run.
        head: dict[str, Any] = {k: record[k] for k in ("operation", "target") if k in record}
        return {**head, **self._ids, **record}


def run(
    request: RunRequest, context: HostContext | None = None, *, confirm: Confirm | None = None
) -> Outcome:
    """One run as a library call: ``orchestrator.run(RunRequest(argv=("make", "test")))``.
    Without a context, this process's environment and working directory are the host's
    (the caller is then the front door that reads them)."""
    context = context or HostContext.from_environ(os.environ)
    return Runner(context, request, confirm=confirm).run()
