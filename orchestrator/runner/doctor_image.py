"""``codex-box doctor --image IMAGE``: what an image lacks for the jobs codex-box runs
in it (the CI drivers' stages above all).

Owns: the list of tools a job's image needs and what each is for, and finding them by
running ``command -v`` in a sandbox of that image under ``offline`` (the same path a run
takes: the engine, the image, the profile), judged from its output alone.
Does not own: running (``pipeline``), printing (``cli``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

from orchestrator.core.errors import CodexBoxError
from orchestrator.core.options import LaunchOptions

from .context import HostContext
from .pipeline import Runner, RunRequest
from .selftest.capture import captured

# name → (needed by, required for a CI job)
TOOLS = {
    "sh": ("every command codex-box runs", True),
    "bash": ("GitLab's generated stage scripts, GitHub's run: steps", True),
    "git": ("fetching the sources (GitLab get_sources, actions/checkout)", True),
    "gitlab-runner": ("GitLab caches and artifacts (restore/archive_cache, artifacts)", False),
    "git-lfs": ("repositories that use Git LFS", False),
    "node": ("GitHub JavaScript actions on container backends", False),
}
MARK = "codex-box-doctor:"


@dataclass(frozen=True, slots=True)
class ImageReport:
    image: str
    backend: str
    found: dict[str, str]  # tool → its path in the image
    missing: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not any(TOOLS[t][1] for t in self.missing)

    def as_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "backend": self.backend,
            "ready": self.ready,
            "tools": {
                name: {
                    "path": self.found.get(name),
                    "for": why,
                    "required": required,
                }
                for name, (why, required) in TOOLS.items()
            },
        }


def check_image(context: HostContext, image: str, *, backend: str | None) -> ImageReport:
    """Raises CodexBoxError when the image cannot be run at all (missing, engine down)."""
    probe = "; ".join(
        f'p=$(command -v {name} 2>/dev/null) && echo "{MARK}{name}=$p"' for name in TOOLS
    )
    with tempfile.TemporaryDirectory(prefix="codex-box-doctor-") as workspace:
        runner = Runner(
            context,
            RunRequest(
                argv=("sh", "-c", probe + "; true"),
                profile="offline",
                workspace=workspace,
                backend=backend,
                options=LaunchOptions(image=image),
                policy_mode="off",  # our own probe, not a user's command
            ),
        )
        with captured() as streams:
            outcome = runner.run()
    if outcome.result.exit_code != 0:
        raise CodexBoxError(
            f"image {image} could not run `sh` ({outcome.result.detail or 'exit '}"
            f"{'' if outcome.result.detail else outcome.result.exit_code})",
            hint="an image needs at least /bin/sh",
        )
    found = {}
    for line in streams.stdout.splitlines():
        if line.startswith(MARK) and "=" in line:
            name, _, path = line[len(MARK) :].partition("=")
            if name in TOOLS:
                found[name] = path
    missing = tuple(name for name in TOOLS if name not in found)
    return ImageReport(image=image, backend=outcome.result.backend, found=found, missing=missing)
