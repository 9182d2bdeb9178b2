"""The test "internet": an HTTP and HTTPS origin that answers every request and logs it.

Run by tests/origin.py inside a network namespace the test creates (stdlib only, so the
system python3 can run it under `ip netns exec` without the venv). Every connection ends
up as one JSON line in --log: a request it answered, or {"raw": true} for a connection
that never produced a valid HTTP request (a proxy that tunnels bytes where it should
have refused still leaves a trace).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socketserver
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 16 * 1024 * 1024  # tests send small bodies; a bound keeps a bug from eating RAM
MAX_CHUNKS = 10_000


class Log:
    """One write per record under a lock, so concurrent handlers never interleave lines
    and a test reading the file sees only whole records."""

    def __init__(self, path: str) -> None:
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 -- lives as long as the process
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()


class OriginServer(ThreadingHTTPServer):
    daemon_threads = True  # an idle keep-alive connection must not hold up SIGTERM
    block_on_close = False

    def __init__(
        self, bind: str, port: int, tls: ssl.SSLContext | None, log: Log, body_size: int
    ) -> None:
        self.bind, self.tls, self.log, self.body_size = bind, tls, log, body_size
        super().__init__((bind, port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), which does a DNS lookup; inside the
        # namespace there is no resolver, so that would stall startup for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.bind, self.server_address[1]


class Handler(BaseHTTPRequestHandler):
    server: OriginServer
    protocol_version = "HTTP/1.1"  # proxies reuse origin connections; answer like a real one
    timeout = 5  # bounds how long a silent connection holds a thread before it is logged raw

    def setup(self) -> None:
        self.answered = 0
        self.tls_failed = False
        self.sni: str | None = None
        tls = self.server.tls
        if tls is not None:
            # The handshake happens here, in the connection's own thread: wrapping the
            # listening socket would run it inside accept() and one silent client would
            # stall every other connection on that port.
            self.request.settimeout(self.timeout)
            try:
                self.request = tls.wrap_socket(self.request, server_side=True)
                self.sni = getattr(self.request, "cbx_sni", None)
            except OSError:  # ssl.SSLError and timeouts alike
                # wrap_socket has already detached and closed the plain socket, so
                # there is nothing to build rfile/wfile on: skip straight to finish().
                self.tls_failed = True
                return
        super().setup()

    def handle(self) -> None:
        if not self.tls_failed:
            super().handle()

    def finish(self) -> None:
        if not self.answered:
            self.server.log.write(
                {
                    "raw": True,
                    "bind": self.server.bind,
                    "port": self.server.server_port,
                    "tls": self.server.tls is not None,
                }
            )
        if not self.tls_failed:
            with contextlib.suppress(OSError):  # the client is gone; nothing to flush to
                super().finish()

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler dispatches on hasattr(self, "do_" + METHOD): answering
        # every method token means the origin never decides what a proxy may forward.
        if name.startswith("do_"):
            return self.reply
        raise AttributeError(name)

    def read_body(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            for _ in range(MAX_CHUNKS):
                size = int(self.rfile.readline(100).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    for _ in range(100):  # trailers end with an empty line
                        if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                            break
                    return total
                total += len(self.rfile.read(min(size, MAX_BODY)))
                self.rfile.readline(10)
            return total
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        return len(self.rfile.read(length)) if length > 0 else 0

    def reply(self) -> None:
        host = self.headers.get("Host", "")
        body_len = self.read_body()
        record = {
            "method": self.command,
            "host": host,
            "path": self.path,
            "tls": self.server.tls is not None,
            "bind": self.server.bind,
            "port": self.server.server_port,
            "body_len": body_len,
            # What arrived, for the credential broker's tests (tests only: no secrets).
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        if self.sni is not None:
            record["sni"] = self.sni
        self.server.log.write(record)
        self.answered += 1
        head = f"origin:{self.command}:{host}:{self.path}\n".encode(errors="replace")
        if self.path.startswith("/reflect-chunked"):  # the echo split by chunk framing
            echo = f"authorization={self.headers.get('Authorization', '')}\n".encode()
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(echo) // 2
            for part in (echo[:half], echo[half:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/reflect"):  # an origin that echoes what it was sent
            head += f"authorization={self.headers.get('Authorization', '')}\n".encode()
        body = head[: self.server.body_size].ljust(self.server.body_size, b".")
        self.send_response(200)
        self.send_header("X-Origin", "codex-box-test")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass  # the JSON log is the record; stderr is for real errors only


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def remember_sni(sock: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
        # Logged so a test can tell which name a TLS-originating proxy asked for.
        sock.cbx_sni = name

    context.sni_callback = remember_sni
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bind", action="append", required=True)
    parser.add_argument("--http-port", type=int, default=80)
    parser.add_argument("--https-port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--body-size", type=int, default=1024)
    args = parser.parse_args(argv)

    # Blocked before any thread starts, so every thread inherits the mask and the main
    # thread alone receives SIGTERM through sigwait below.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)

    log = Log(args.log)
    context = tls_context(args.cert, args.key)
    servers = []
    for bind in args.bind:
        servers.append(OriginServer(bind, args.http_port, None, log, args.body_size))
        servers.append(OriginServer(bind, args.https_port, context, log, args.body_size))
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        for s in servers
    ]
    for thread in threads:
        thread.start()
    print("ready", flush=True)

    signal.sigwait(stop_signals)
    # No server.shutdown(): each waits out a poll interval in turn, adding most of a
    # second to every test's teardown. Every log line is already flushed, and exiting
    # closes the listeners; daemon threads mid-connection simply stop.
    return 0


if __name__ == "__main__":
    sys.exit(main())
