"""A stand-in for "the internet" for the egress proxy's tests.

The proxy refuses loopback and every address of the host itself, so an origin server on
127.0.0.1 (like tests/servers.py) cannot play a remote site: the proxy would rightly
refuse it. The origin therefore lives in a network namespace the test creates, reached
over a veth pair at 10.250.K.2: an address that is not local to the host, yet still
entirely ours, so no test traffic leaves the machine.

extra_addresses pull further addresses (169.254.169.254, say) into the same namespace
with a /32 host route for the test's duration: a proxy that wrongly connects there hits
our logging server, not a real cloud metadata service.

Needs root and iproute2; raises RuntimeError otherwise (the caller chooses skip or fail).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import ipaddress
import itertools
import json
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER = Path(__file__).with_name("origin_server.py")
PYTHON = "/usr/bin/python3"  # the venv's python is not needed: the server is stdlib only
LOCK = Path("/run/codex-box-origin.lock")  # /run, not /run/lock: only root can plant it
READY_TIMEOUT = 10.0
ROUTE_TYPES = {
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "throw",
    "unreachable",
    "prohibit",
    "blackhole",
    "nat",
}
_counter = itertools.count()


@dataclass(frozen=True)
class TestCA:
    __test__ = False  # not a pytest test class, despite the name
    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Origin:
    namespace: str
    address: str
    host_address: str
    extra_addresses: tuple[str, ...]
    ca: TestCA
    log: Path
    http_port: int = 80
    https_port: int = 443
    names: tuple[str, ...] = ()
    host_interface: str = ""

    def requests(self) -> list[dict[str, object]]:
        """Every record so far, requests and raw connections alike, oldest first."""
        try:
            text = self.log.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # The last line may still be being written; only newline-terminated ones count.
        return [json.loads(line) for line in text.split("\n")[:-1] if line]

    def hosts(self, mapping_names: Sequence[str] | None = None) -> dict[str, str]:
        """{name: address}, for a resolver override; the configured names by default."""
        return dict.fromkeys(self.names if mapping_names is None else mapping_names, self.address)


def _is_ip(name: str) -> bool:
    with contextlib.suppress(ValueError):
        return bool(ipaddress.ip_address(name))
    return False


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    # A little in the past, so a clock a few seconds behind the server's still accepts it.
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def make_test_ca(directory: Path, names: Sequence[str]) -> TestCA:
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "codex-box test origin CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        _builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names
    ]
    leaf_name = names[0] if names else "origin.test"
    leaf = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, leaf_name)])
    cert = (
        _builder(leaf, ca_name, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        # OpenSSL's strict verification (Python 3.13's default) wants both key ids.
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    result = TestCA(
        ca=directory / "ca.pem", cert=directory / "server.pem", key=directory / "server.key"
    )
    result.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    result.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result.key.touch(mode=0o600)
    result.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return result


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _free_subnet() -> int:
    """A K whose 10.250.K.0/30 overlaps nothing the host has, addresses or routes.
    Prefixes shorter than /16 (a default route, a VPN's 10/8) are ignored: our /30 is
    more specific, so it only shadows four of their addresses while the test runs."""
    taken = [
        ipaddress.ip_interface(line.split()[3]).network
        for line in _ip("-4", "-o", "addr", "show").splitlines()
    ]
    for line in _ip("-4", "route", "show", "table", "all").splitlines():
        words = line.split()
        if words[0] in ROUTE_TYPES:  # "local 127.0.0.0/8 ...": the prefix comes second
            words = words[1:]
        with contextlib.suppress(ValueError, IndexError):  # "default" and the like
            taken.append(ipaddress.ip_network(words[0], strict=False))
    taken = [n for n in taken if n.prefixlen >= 16]
    for k in range(200, 251):
        candidate = ipaddress.ip_network(f"10.250.{k}.0/30")
        if not any(candidate.overlaps(n) for n in taken):
            return k
    raise RuntimeError("no free 10.250.K.0/30 for K in 200..250")


def _wait_ready(proc: subprocess.Popen[bytes], stderr: Path) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if sel.select(left) and proc.stdout.readline().strip() == b"ready":
                return
            if proc.poll() is not None:
                break
    raise RuntimeError(
        f"origin server not ready (exit {proc.poll()}): "
        f"{stderr.read_text(errors='replace')[-2000:]}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def origin_namespace(
    tmp: Path,
    *,
    names: Sequence[str] = ("allowed.test", "other.test", "inner.allowed.test"),
    extra_addresses: Sequence[str] = (),
) -> Iterator[Origin]:
    if os.geteuid() != 0:
        raise RuntimeError("origin_namespace needs root (network namespaces, veth, routes)")
    if shutil.which("ip") is None:
        raise RuntimeError("origin_namespace needs iproute2's `ip`")
    pid, n = os.getpid(), next(_counter)
    namespace = f"cbxo-{pid}-{n}"
    host_if, ns_if = f"cbxo{pid:x}h{n}", f"cbxo{pid:x}n{n}"
    if len(host_if) > 15:  # IFNAMSIZ; only after ~65k namespaces in one process
        raise RuntimeError(f"interface name too long: {host_if}")
    if any(ipaddress.ip_address(a).version != 4 for a in extra_addresses):
        raise RuntimeError("extra_addresses must be IPv4 (the veth link is IPv4 only)")
    log = tmp / "origin-log.jsonl"

    # Every undo is registered right after the step it undoes, so a failure half-way
    # unwinds exactly what exists; LIFO order stops the server before its namespace goes.
    with contextlib.ExitStack() as undo:
        # Parallel test processes would otherwise all pick the same K (and fight over
        # the same extra host routes); the lock holds until our addresses exist.
        with LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            k = _free_subnet()
            host_address, address = f"10.250.{k}.1", f"10.250.{k}.2"
            _ip("netns", "add", namespace)
            undo.callback(_ip, "netns", "delete", namespace)
            _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", namespace)
            # Deleting one end deletes both; explicit, because a namespace that still
            # has a process in it keeps its end alive after `netns delete`.
            undo.callback(_ip, "link", "delete", host_if)
            _ip("addr", "add", f"{host_address}/30", "dev", host_if)
            _ip("-n", namespace, "addr", "add", f"{address}/30", "dev", ns_if)
            for extra in extra_addresses:
                _ip("-n", namespace, "addr", "add", f"{extra}/32", "dev", ns_if)
            _ip("link", "set", host_if, "up")
            _ip("-n", namespace, "link", "set", ns_if, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            # Lets the origin answer clients whose traffic the host routes in from
            # elsewhere (a sandbox's own namespace); the server never opens connections.
            _ip("-n", namespace, "route", "add", "default", "via", host_address)
            for extra in extra_addresses:
                # `add`, never `replace`: if the host already routes this address
                # specially, fail loudly rather than rewrite the host's routing.
                _ip("route", "add", f"{extra}/32", "via", address, "dev", host_if)
                undo.callback(_ip, "route", "delete", f"{extra}/32", "via", address, "dev", host_if)
                # An address local to the host (a metadata agent on lo, say) wins over
                # any route; then the test would not be talking to us.
                if f"dev {host_if}" not in _ip("route", "get", extra):
                    raise RuntimeError(f"{extra} does not route to the origin namespace")

        ca = make_test_ca(tmp / "origin-ca", names)
        stderr = tmp / "origin-server.stderr"
        binds = [a for addr in (address, *extra_addresses) for a in ("--bind", addr)]
        options = {"--http-port": 80, "--https-port": 443, "--cert": ca.cert, "--key": ca.key}
        options |= {"--log": log, "--body-size": 1024}
        command = ["ip", "netns", "exec", namespace, PYTHON, str(SERVER), *binds]
        command += [str(word) for pair in options.items() for word in pair]
        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
            )
        undo.callback(_stop, proc)
        _wait_ready(proc, stderr)
        yield Origin(
            namespace=namespace,
            address=address,
            host_address=host_address,
            extra_addresses=tuple(extra_addresses),
            ca=ca,
            log=log,
            names=tuple(names),
            host_interface=host_if,
        )
