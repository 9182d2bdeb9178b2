"""``python -m orchestrator`` is ``codex-box``."""

from orchestrator.cli.app import main

main()
