"""Front doors for CI job runners (DESIGN.md §3, row 7): GitLab Runner's custom
executor (``ci.gitlab``) and GitHub Actions' runner container hooks (``ci.github``).

A CI job is a session: prepared once, each stage or step exec'd in it, always cleaned
up. Each driver speaks its CI system's documented protocol and nothing else: it reads
the runner's environment and files, builds one request and calls the runner (row 6),
like the CLI does. Imports no web framework.
"""
