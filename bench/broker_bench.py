"""The credential broker's cost, measured side by side in one run (never asserted).

    .venv/bin/python bench/broker_bench.py [--rounds 6] [--requests 150]

Everything on 127.0.0.1 (no traffic leaves the machine):
  origin   a subprocess (this file, --role origin): an asyncio HTTPS server with a test
           CA's certificate for origin.test, answering each request with 200 and 1024
           bytes of body, Connection: close;
  proxies  two ProxySessions in this process, each in its own thread and event loop as
           in a run, both with inspect_tls (TLS terminated with the session CA, the
           origin verified with the test CA): "inspected" brokers nothing; "broker"
           brokers one secret bound to origin.test;
  client   this process, one request at a time: CONNECT, TLS to the proxy (trusting
           its session CA), GET with an Authorization header, the whole response read.
Three modes, their order rotated each round so drift hits all alike:
  inspected      the inspected proxy, a bearer token that is not a placeholder;
  broker-none    the broker's proxy, the same non-placeholder token (the broker looks,
                 finds nothing);
  injected       the broker's proxy, the placeholder: swapped for the real value, and
                 the response guarded (scanned for the value) on its way back.
Prints p50/p90 per mode (all its requests pooled) and injected/inspected p50.
Target (issue 22): injected p50 <= 1.1x inspected p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.core.brokered import BrokeredSecret
from orchestrator.core.spec import Egress
from orchestrator.netproxy.session import ProxySession
from tests.origin import make_test_ca

NAME = "origin.test"
BODY = b"x" * 1024
PLACEHOLDER = "cbx_" + "P" * 40
REAL = "real_" + "R" * 40


async def origin_main(cert: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if REAL.encode() not in head and PLACEHOLDER.encode() in head:
                raise SystemExit("the origin got a placeholder: nothing was injected")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1024\r\nConnection: close\r\n\r\n" + BODY
            )
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


def session(egress: Egress, values: dict[str, str] | None) -> tuple[ProxySession, int]:
    proxy = ProxySession(egress, run_id="bench", audit=lambda r: None, secret_values=values)
    proxy.__enter__()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    port = listener.getsockname()[1]
    proxy.serve(listener)
    return proxy, port


def fetch(proxy_port: int, origin_port: int, trust: ssl.SSLContext, token: str) -> float:
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", proxy_port)) as raw:
        raw.sendall(f"CONNECT {NAME}:{origin_port} HTTP/1.1\r\n\r\n".encode())
        got = b""
        while b"\r\n\r\n" not in got:
            got += raw.recv(4096)
        if not got.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"CONNECT refused: {got[:200]!r}")
        with trust.wrap_socket(raw, server_hostname=NAME) as tls:
            tls.sendall(
                f"GET /x HTTP/1.1\r\nHost: {NAME}:{origin_port}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    if not data.startswith(b"HTTP/1.1 200") or not data.endswith(BODY):
        raise SystemExit(f"bad answer: {data[:200]!r}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="load")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=150)
    args = parser.parse_args()
    if args.role == "origin":
        asyncio.run(origin_main(args.cert, args.key))
        return
    tmp = Path(tempfile.mkdtemp(prefix="codex-box-broker-bench-"))
    ca = make_test_ca(tmp / "ca", [NAME])
    origin = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--role",
            "origin",
            "--cert",
            str(ca.cert),
            "--key",
            str(ca.key),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert origin.stdout is not None
        origin_port = int(origin.stdout.readline())
        base = {
            "allow": (f"{NAME}:{origin_port}",),
            "deny": (),
            "methods": None,
            "inspect_tls": True,
            "allow_local_hosts": True,  # the bench origin is on loopback
            "hosts": ((NAME, "127.0.0.1"),),
            "upstream_ca": str(ca.ca),
        }
        secret = BrokeredSecret(
            name="TOKEN",
            hosts=(f"{NAME}:{origin_port}",),
            inject=("header",),
            placeholder=PLACEHOLDER,
        )
        inspected, inspected_port = session(
            Egress(**base, ca_file=str(tmp / "a" / "ca.pem")),
            None,  # type: ignore[arg-type]
        )
        broker, broker_port = session(
            Egress(**base, ca_file=str(tmp / "b" / "ca.pem"), secrets=(secret,)),  # type: ignore[arg-type]
            {"TOKEN": REAL},
        )
        trust_a = ssl.create_default_context(cafile=str(tmp / "a" / "ca.pem"))
        trust_b = ssl.create_default_context(cafile=str(tmp / "b" / "ca.pem"))
        modes = {
            "inspected": (inspected_port, trust_a, "not-a-placeholder-" + "N" * 26),
            "broker-none": (broker_port, trust_b, "not-a-placeholder-" + "N" * 26),
            "injected": (broker_port, trust_b, PLACEHOLDER),
        }
        for port, trust, token in modes.values():  # warm-up: leaf certificates, caches
            for _ in range(20):
                fetch(port, origin_port, trust, token)
        times: dict[str, list[float]] = {m: [] for m in modes}
        order = list(modes)
        for round_ in range(args.rounds):
            for mode in order[round_ % 3 :] + order[: round_ % 3]:
                port, trust, token = modes[mode]
                times[mode] += [
                    fetch(port, origin_port, trust, token) for _ in range(args.requests)
                ]
        inspected.close()
        broker.close()
        injected = broker.credential_uses()
    finally:
        origin.terminate()
        origin.wait()
    print(f"machine: {os.cpu_count()} cpus; {args.rounds} rounds x {args.requests} requests")
    p50 = {}
    for mode, values in times.items():
        values.sort()
        p50[mode] = statistics.median(values)
        p90 = values[int(len(values) * 0.9)]
        print(f"  {mode:12} p50 {p50[mode] * 1000:6.2f} ms   p90 {p90 * 1000:6.2f} ms")
    ratio = p50["injected"] / p50["inspected"]
    print(f"  injections counted by the broker: {injected}")
    verdict = "met" if ratio <= 1.1 else "NOT met"
    print(f"injected/inspected p50: {ratio:.3f}x (target <= 1.1x: {verdict})")


if __name__ == "__main__":
    main()
