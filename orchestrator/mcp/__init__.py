"""``codex-box mcp``: codex-box's sandbox as MCP tools for an AI agent, on stdio.

``box`` does the work with the runner (no MCP import: tested without the SDK),
``files`` the workspace's file tools, ``capture`` a run's output, capped; ``server``
is the thin MCP layer (the official ``mcp`` SDK, imported by it alone).
"""
