"""Dev Containers (``devcontainer.json``) under a codex-box profile (DESIGN.md §3, row 6,
beside the runner): finding and reading the file (``config``; through the Dev Containers
CLI: ``reading``), what a profile refuses or changes in it (``vetting``, ``run_args``,
``variables``, ``findings``), the launch it becomes (``plan``), building its image
(``build``, ``dockerfile``, ``engine``), and a hardened file for a plain ``devcontainer
up`` (``export``, ``export_image``, ``export_files``, ``jsonc_edit``). The profile wins
on every security setting.
"""
