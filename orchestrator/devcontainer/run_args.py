"""A devcontainer.json's ``runArgs``: the ``docker run`` arguments it adds.

Owns: reading them as ``docker run`` would (``--name value``, ``--name=value``) and
deciding each: applied (``--env``/``-e``, ``--label``/``-l``, ``--hostname``/``-h``,
``--user``/``-u``: harmless, codex-box sets them itself), changed (harmless, but
codex-box decides them: ``--name``, ``--workdir``, ``--init``, ``--rm``, ``-t``/``-i``,
``--shm-size``, ``--add-host``, the stop signal, the platform, a network that is not
another's namespace), or refused — everything that reaches the host (``--privileged``,
``--cap-add``, host or another container's namespaces, devices, security options,
mounts and volumes, ``--env-file``, which reads a host file) and **any argument not in
those lists**: an unknown one may be the next ``--privileged``, so it is refused, not
ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .findings import Finding, changed_finding, refused_finding

APPLIED = {"-e": "env", "--env": "env", "-l": "label", "--label": "label",
           "-h": "hostname", "--hostname": "hostname", "-u": "user", "--user": "user"}  # fmt: skip
_CHANGED_WITH_VALUE = {
    "--name": "codex-box names its containers",
    "-w": "the working directory is the workspace (or exec --cwd)",
    "--workdir": "the working directory is the workspace (or exec --cwd)",
    "--shm-size": "the engine's default /dev/shm size applies",
    "--add-host": "names resolve as the profile's network decides",
    "--stop-signal": "codex-box stops its containers itself",
    "--stop-timeout": "codex-box stops its containers itself",
    "--platform": "the image's own platform runs",
    # What `devcontainer export` writes: tighter, and codex-box's own applies anyway.
    "--cap-drop": "the profile drops every capability",
    "--pids-limit": "codex-box's limits apply (--pids, --memory, --cpus)",
    "--memory": "codex-box's limits apply (--pids, --memory, --cpus)",
    "-m": "codex-box's limits apply (--pids, --memory, --cpus)",
    "--memory-swap": "codex-box's limits apply (--pids, --memory, --cpus)",
    "--cpus": "codex-box's limits apply (--pids, --memory, --cpus)",
    "--tmpfs": "codex-box makes its own /tmp (volumes become private tmpfs)",
}
_CHANGED_FLAGS = {
    "--init": "codex-box always runs an init",
    "--rm": "codex-box always removes its containers",
    "-t": "a terminal only with run --tty",
    "--tty": "a terminal only with run --tty",
    "-i": "input follows the caller",
    "--interactive": "input follows the caller",
    "-it": "a terminal only with run --tty",
    "--read-only": "the profile decides the root filesystem",
}
_NAMESPACES = ("--network", "--net", "--pid", "--ipc", "--userns", "--uts", "--cgroupns")
_REFUSED_WITH_VALUE = {
    "--cap-add": "the profile's capabilities are none",
    "--device": "it hands a host device to the container",
    "--gpus": "it hands a host device to the container",
    "--device-cgroup-rule": "it hands a host device to the container",
    "-v": "a mount outside the workspace: the profile decides what is bound",
    "--volume": "a mount outside the workspace: the profile decides what is bound",
    "--mount": "a mount outside the workspace: the profile decides what is bound",
    "--volumes-from": "another container's mounts",
    "--env-file": "it reads a host file into the sandbox (pass variables with --env)",
    "--cgroup-parent": "the profile decides the limits",
    "--runtime": "codex-box decides the OCI runtime",
}


@dataclass(slots=True)
class Applied:
    """What codex-box applies of a file's runArgs."""

    env: list[str] = field(default_factory=list)  # NAME=VALUE
    labels: list[str] = field(default_factory=list)  # key=value
    hostname: str | None = None
    user: str | None = None


def read_run_args(args: list[str], key: str = "runArgs") -> tuple[Applied, list[Finding]]:
    """What applies and what the profile refuses or changes, in argument order."""
    applied, found = Applied(), []
    i = 0
    while i < len(args):
        arg, where = args[i], f"{key}[{i}]"
        name, sep, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if not sep and len(name) > 2 and name[0] == "-" and name[1] != "-" and name[:2] in APPLIED:
            # -eFOO=bar and -e=FOO=bar, as docker reads them
            name, sep, inline = name[:2], "=", name[2:].removeprefix("=")
        takes_value = (
            name in APPLIED
            or name in _CHANGED_WITH_VALUE
            or name in _REFUSED_WITH_VALUE
            or name in _NAMESPACES
            or name == "--security-opt"
        )
        value = inline if sep else (args[i + 1] if takes_value and i + 1 < len(args) else "")
        shown = arg if sep or not takes_value else f"{arg} {value}"
        i += 1 if sep or not takes_value else 2
        if name in APPLIED:
            kind = APPLIED[name]
            if kind == "env" and "=" not in value:
                # docker passes the host's own NAME then: a host secret, past the filter.
                why = f"it passes the host's {value or 'variable'}: pass it with --env yourself"
                found.append(refused_finding(where, shown, why))
            elif kind == "env":
                applied.env.append(value)
            elif kind == "label":
                applied.labels.append(value)
            elif kind == "hostname":
                applied.hostname = value
            else:
                applied.user = value
        elif name in _CHANGED_WITH_VALUE:
            found.append(changed_finding(where, shown, _CHANGED_WITH_VALUE[name]))
        elif name in _CHANGED_FLAGS and not sep:
            found.append(changed_finding(where, shown, _CHANGED_FLAGS[name]))
        elif name == "--privileged":
            found.append(refused_finding(where, shown, "a privileged container is the host's root"))
        elif name in _NAMESPACES:
            if value.startswith(("host", "container:", "ns:", "/")) or not value:
                why = "it shares a namespace of the host or another container"
                found.append(refused_finding(where, shown, why))
            else:
                network = name in ("--network", "--net")
                why = "the profile decides the network" if network else "codex-box decides them"
                found.append(changed_finding(where, shown, why))
        elif name == "--security-opt":
            if tightens(value):
                found.append(changed_finding(where, shown, "the profile's own applies"))
            else:
                why = "the profile decides the security options"
                found.append(refused_finding(where, shown, why))
        elif name in _REFUSED_WITH_VALUE:
            found.append(refused_finding(where, shown, _REFUSED_WITH_VALUE[name]))
        else:
            why = "a run argument codex-box does not know to be harmless"
            found.append(refused_finding(where, arg, why))
    return applied, found


def tightens(option: str) -> bool:
    """A security option that only confines more (what ``devcontainer export`` writes):
    no-new-privileges, a seccomp or AppArmor profile that is not ``unconfined``. Every
    SELinux ``label=`` and ``systempaths=`` one may loosen: not this."""
    squeezed = option.replace(" ", "").lower().replace(":", "=", 1)
    if squeezed in ("no-new-privileges", "no-new-privileges=true"):
        return True
    kind, _, value = squeezed.partition("=")
    return kind in ("seccomp", "apparmor") and bool(value) and value != "unconfined"
