"""``codex-box selftest`` as a library: the escape attacks, run through the real
pipeline on this host, each judged by its effect on the host, with positive controls.

Owns: the catalogue (``attacks``), running it (``harness``), the JUnit report
(``junit``) and the summary (``report``).
Does not own: printing or exiting (``cli.selftest``).
"""
