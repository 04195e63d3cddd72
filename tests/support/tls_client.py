#!/usr/bin/env python3
"""TLS clients for prefork's integration tests (Python's ssl module), on 127.0.0.1 only.

Each command prints one JSON object on stdout and stops by itself:

  get PORT [--version 1.2|1.3] [--alpn P,Q] [--target /] [--ca FILE]...
      one request on a new connection: the protocol version, ALPN, the certificate's
      serial, the status and the body.
  load PORT --seconds S --connections N [--new-every K] [--ca FILE]...
      N keep-alive clients as fast as they go; each opens a new connection (a new
      handshake) every K requests, and when the server answers Connection: close. Any
      request without its whole answer, or a handshake that fails, is a failure.
  sporadic PORT --seconds S --clients N [--min-pause MS] [--max-pause MS] [--ca FILE]...
      N keep-alive clients that send one request now and then; a response that says
      Connection: close makes the client connect again (not a failure); a connection that
      ends under a request is a failure.
  raw PORT --data TEXT [--pad N]
      sends TEXT (backslash escapes decoded; with an X-Pad field of N bytes before its blank
      line) on a new connection, reads until the server closes it (15 s at most): the
      statuses of the responses, whether it closed, and after how long.
  half-close PORT --earlier N
      N requests on one keep-alive connection, each answered before the next; then
      /block?ms=300 (which holds the server's loop), and a moment later one more request
      and the TCP FIN without close_notify; reads until the server closes (15 s at most):
      the statuses of the last two responses, whether it closed, and after how long.
  idle-limit PORT --idle N
      N keep-alive connections, each answered once and left idle (the oldest first), then
      one more: its status, and which of the idle ones the server closed meanwhile.
  hangups PORT --count N
      clients that hang up in the middle of a handshake, and in the middle of a large
      download (some with a reset).
"""

import argparse
import json
import random
import socket
import ssl
import struct
import sys
import threading
import time


def context(args, version=None, alpn=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.ca:
        for path in args.ca:
            ctx.load_verify_locations(cafile=path)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version == "1.2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "1.3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(alpn or ["http/1.1"])
    return ctx


class Connection:
    """One TLS connection and the responses read from it."""

    def __init__(self, ctx, port, timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        self.buffer = b""

    def serial(self):
        cert = self.sock.getpeercert()
        return cert.get("serialNumber", "") if cert else ""

    def request(self, target="/"):
        """Sends GET target; returns (status, headers, body)."""
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % target).encode())
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def _read(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.buffer += data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def cmd_get(args):
    ctx = context(args, args.version, args.alpn.split(",") if args.alpn else None)
    conn = Connection(ctx, args.port)
    status, headers, body = conn.request(args.target)
    out = {
        "version": conn.sock.version(),
        "alpn": conn.sock.selected_alpn_protocol(),
        "serial": conn.serial(),
        "status": status,
        "connection": headers.get("connection", ""),
        "body": body.decode("latin-1"),
    }
    conn.close()
    return out


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []
        self.serials = set()

    def add(self, name, n=1):
        with self.lock:
            self.counts[name] = self.counts.get(name, 0) + n

    def error(self, text):
        with self.lock:
            self.counts["failed"] = self.counts.get("failed", 0) + 1
            if len(self.errors) < 5:
                self.errors.append(text)

    def result(self):
        out = dict(self.counts)
        out.setdefault("failed", 0)
        out["errors"] = self.errors
        out["serials"] = sorted(self.serials)
        return out


def connect(ctx, port, tally):
    """A new connection, or None (a failed handshake, counted)."""
    try:
        conn = Connection(ctx, port)
    except (OSError, ssl.SSLError) as error:
        tally.add("handshake_failures")
        tally.error("connect/handshake: %r" % (error,))
        return None
    tally.add("handshakes")
    with tally.lock:
        tally.serials.add(conn.serial())
    return conn


def cmd_load(args):
    ctx = context(args)
    tally = Tally()
    deadline = time.monotonic() + args.seconds

    def client():
        conn = None
        sent_on_conn = 0
        while time.monotonic() < deadline:
            if conn is None:
                conn = connect(ctx, args.port, tally)
                sent_on_conn = 0
                if conn is None:
                    time.sleep(0.05)
                    continue
            tally.add("requests")
            try:
                status, headers, body = conn.request("/")
                sent_on_conn += 1
                if status != 200 or body != b"Hello, World!":
                    tally.error("status %d body %r" % (status, body[:40]))
                if headers.get("connection", "").lower() == "close":
                    tally.add("closed_after_response")
                    conn.close()
                    conn = None
                elif args.new_every and sent_on_conn >= args.new_every:
                    conn.close()
                    conn = None
            except (OSError, ssl.SSLError, ValueError, IndexError) as error:
                tally.error("request: %r" % (error,))
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally.result()


def cmd_sporadic(args):
    ctx = context(args)
    tally = Tally()
    deadline = time.monotonic() + args.seconds

    def client(seed):
        rng = random.Random(seed)
        conn = None
        while True:
            pause = rng.uniform(args.min_pause, args.max_pause) / 1000.0
            if time.monotonic() + pause >= deadline:
                break
            time.sleep(pause)
            if conn is None:
                conn = connect(ctx, args.port, tally)
                if conn is None:
                    continue
            tally.add("requests")
            try:
                status, headers, body = conn.request("/")
                if status != 200 or body != b"Hello, World!":
                    tally.error("status %d body %r" % (status, body[:40]))
                if headers.get("connection", "").lower() == "close":
                    tally.add("closed_after_response")
                    conn.close()
                    conn = None
            except (OSError, ssl.SSLError, ValueError, IndexError) as error:
                tally.error("request: %r" % (error,))
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally.result()


def cmd_raw(args):
    import codecs
    data = codecs.decode(args.data, "unicode_escape").encode("latin-1")
    if args.pad:
        end = data.index(b"\r\n\r\n")
        data = data[:end] + b"\r\nX-Pad: " + b"a" * args.pad + data[end:]
    conn = Connection(context(args), args.port, timeout=15)
    start = time.monotonic()
    if args.split:
        # Each request in a record of its own, sent back to back: Nagle puts several
        # records in one segment, so the server reads them together.
        for part in data.split(b"\r\n\r\n"):
            if part:
                conn.sock.sendall(part + b"\r\n\r\n")
    else:
        conn.sock.sendall(data)
    received = b""
    closed = False
    try:
        while True:
            chunk = conn.sock.recv(65536)
            if not chunk:
                closed = True
                break
            received += chunk
    except (ConnectionError, ssl.SSLError):
        closed = True
    except socket.timeout:
        pass
    import re
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]
    conn.close()
    return {"statuses": statuses, "closed": closed,
            "seconds": round(time.monotonic() - start, 3)}


def cmd_half_close(args):
    import re
    conn = Connection(context(args), args.port, timeout=15)
    for _ in range(args.earlier):
        status, _, _ = conn.request("/")
        if status != 200:
            return {"error": "an earlier request was answered %d" % status}
    conn.sock.sendall(b"GET /block?ms=300 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    time.sleep(0.05)  # while the loop is held; earlier, the three arrive together
    start = time.monotonic()
    conn.sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    socket.socket.shutdown(conn.sock, socket.SHUT_WR)  # the FIN, without close_notify
    received = conn.buffer
    closed = False
    try:
        while True:
            chunk = conn.sock.recv(65536)
            if not chunk:
                closed = True
                break
            received += chunk
    except (ConnectionError, ssl.SSLError):
        closed = True
    except socket.timeout:
        pass
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]
    conn.close()
    return {"statuses": statuses, "closed": closed,
            "seconds": round(time.monotonic() - start, 3)}


def cmd_idle_limit(args):
    ctx = context(args)
    idle = []
    for _ in range(args.idle):
        conn = Connection(ctx, args.port)
        conn.request("/")
        idle.append(conn)
        time.sleep(0.05)
    newcomer = Connection(ctx, args.port)
    status, _, _ = newcomer.request("/")
    closed = []
    for conn in idle:
        conn.sock.settimeout(2)
        try:
            closed.append(conn.sock.recv(1) == b"")
        except socket.timeout:
            closed.append(False)
        except (ConnectionError, ssl.SSLError):
            closed.append(True)
        conn.close()
    newcomer.close()
    return {"status": status, "closed": closed}


def client_hello():
    """The bytes of a real ClientHello, as a client would send them."""
    ctx = context(argparse.Namespace(ca=None))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def cmd_hangups(args):
    hello = client_hello()
    ctx = context(argparse.Namespace(ca=None))
    done = {"mid_handshake": 0, "mid_download": 0}
    for i in range(args.count):
        # Half a ClientHello, then gone (a FIN or a reset).
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
        sock.sendall(hello[: max(1, (len(hello) * (i % 4 + 1)) // 5)])
        if i % 2:
            reset(sock)
        else:
            sock.close()
        done["mid_handshake"] += 1
        # A large download, read in part, then gone.
        conn = Connection(ctx, args.port)
        conn.sock.sendall(b"GET /bytes?n=%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % args.bytes)
        got = 0
        while got < 64 * 1024 * (i % 3 + 1):
            data = conn.sock.recv(65536)
            if not data:
                break
            got += len(data)
        raw = conn.sock
        if i % 2:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
        done["mid_download"] += 1
    return done


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("get", "load", "sporadic", "raw", "half-close", "idle-limit", "hangups"):
        p = sub.add_parser(name)
        p.add_argument("port", type=int)
        p.add_argument("--ca", action="append")
    g = sub.choices["get"]
    g.add_argument("--version", choices=["1.2", "1.3"])
    g.add_argument("--alpn")
    g.add_argument("--target", default="/")
    lo = sub.choices["load"]
    lo.add_argument("--seconds", type=float, default=5)
    lo.add_argument("--connections", type=int, default=8)
    lo.add_argument("--new-every", type=int, default=0)
    sp = sub.choices["sporadic"]
    sp.add_argument("--seconds", type=float, default=5)
    sp.add_argument("--clients", type=int, default=20)
    sp.add_argument("--min-pause", type=float, default=100)
    sp.add_argument("--max-pause", type=float, default=1000)
    r = sub.choices["raw"]
    r.add_argument("--data", required=True)
    r.add_argument("--pad", type=int, default=0)
    r.add_argument("--split", action="store_true")
    sub.choices["half-close"].add_argument("--earlier", type=int, default=3)
    sub.choices["idle-limit"].add_argument("--idle", type=int, default=2)
    h = sub.choices["hangups"]
    h.add_argument("--count", type=int, default=20)
    h.add_argument("--bytes", type=int, default=8 << 20)
    args = parser.parse_args()
    try:
        out = globals()["cmd_" + args.command.replace("-", "_")](args)
    except (OSError, ssl.SSLError, ValueError) as error:
        out = {"error": repr(error)}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
