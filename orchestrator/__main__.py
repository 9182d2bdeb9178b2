"""``python -m orchestrator`` is ``codex-box``."""

from .cli import main

main()
