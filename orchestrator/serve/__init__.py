"""``codex-box serve``: the local HTTP API (row 7, a front door like ``cli``)."""
