"""GitHub Actions' runner container hooks (``ACTIONS_RUNNER_CONTAINER_HOOKS``): a job
with a ``container:`` becomes one codex-box session.

``protocol`` reads the runner's hook input and translates it (pure: mounts, paths,
options, the response); ``hook`` is the front door the runner calls, through the
shipped ``hook.sh`` (``codex-box ci github-hook``). The composite action
(``action.yml`` at the repository root) needs nothing here: it calls ``codex-box run``.
"""
