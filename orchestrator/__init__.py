"""codex-box: run commands inside a sandbox chosen by a named security profile.

Importing this package is cheap and imports no engine SDK (docker, podman, kubernetes):
backends are loaded by name only when chosen.
"""

__version__ = "0.1.0"
