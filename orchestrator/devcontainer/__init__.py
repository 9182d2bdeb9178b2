"""Dev Containers (``devcontainer.json``) under a codex-box profile (DESIGN.md §3, row 6,
beside the runner): finding and reading the file (``config``), and what a profile
refuses or changes in it (``vetting``). The profile wins on every security setting.
"""
