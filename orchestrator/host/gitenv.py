"""Defence in depth for git inside every sandbox: settings given through
``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/``GIT_CONFIG_VALUE_n`` rank with ``git -c``,
above every config file, so a repository config planted after the policy looked (or
one it could not see) still cannot start the fsmonitor hook or run hooks.

Owns: the settings and appending them after the user's own (their count is kept:
their keys stay 0..N-1, ours follow). Does not own: building the environment
(``compile`` calls ``neutralise``).
"""

from __future__ import annotations

from collections.abc import Mapping

# Keys whose neutral value is harmless for every git command, reads and writes alike.
# (core.pager, core.sshCommand, credential.helper… are left alone: overriding them
# would break a user's legitimate setup; the policy judges them instead.)
NEUTRAL = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
)


def neutralise(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the NEUTRAL settings appended to any the user gave. A malformed
    GIT_CONFIG_COUNT is left as it is (git refuses to run with it anyway)."""
    out = dict(env)
    raw = out.get("GIT_CONFIG_COUNT", "0") or "0"
    if not raw.isdigit():
        return out
    count = int(raw)
    for offset, (key, value) in enumerate(NEUTRAL):
        out[f"GIT_CONFIG_KEY_{count + offset}"] = key
        out[f"GIT_CONFIG_VALUE_{count + offset}"] = value
    out["GIT_CONFIG_COUNT"] = str(count + len(NEUTRAL))
    return out
