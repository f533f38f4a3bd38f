#!/usr/bin/env python3
"""Loopback probes for the HTML path (benchmarks, not tests; stdlib only).

  tests/bench/probe.py ttfb   # P5: time to first byte through tagwarden minus the origin's,
                              #     on an origin that trickles its HTML (a piece every 200 ms)
  tests/bench/probe.py slow   # P7: tagwarden's peak RSS with 1,000 slow HTML responses in flight

Both start their own origin (in this process) and a release tagwarden
(./target/release/tagwarden, built by `cargo build --release`) on 127.0.0.1
ports 18580-18589, and are bounded in count and time. Environment knobs:
TTFB_RUNS (default 40), CLIENTS (1000), SLOW_SECONDS (15), PAGE (a corpus page),
TAGWARDEN (another binary).
"""

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ORIGIN, PROXY, ADMIN = 18580, 18581, 18589
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("TAGWARDEN", os.path.join(ROOT, "target", "release", "tagwarden"))
PAGE = os.environ.get("PAGE", os.path.join(ROOT, "..", "shared", "corpus", "pages", "liberation-1.html"))

# The trickling page: a head that arrives at once, then the body in pieces.
FIRST = (
    b'<!doctype html><html><head><meta charset="utf-8"><title>Clinic</title>'
    b'<link rel="stylesheet" href="/site.css"></head><body><h1>Opening hours</h1>'
    b'<p>Monday to Friday, 8:00 to 18:00.</p>\n'
)
LATER = [
    b'<p>Bring your insurance card.</p><script src="https://www.googletagmanager.com/gtm.js"></script>\n',
    b'<img src="https://www.facebook.com/tr?id=1" alt=""><p>Parking behind the building.</p>\n',
    b"</body></html>\n",
]
TRICKLE_SECONDS = 0.2


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


async def read_head(reader):
    try:
        await reader.readuntil(b"\r\n\r\n")
        return True
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return False


async def trickling_origin(reader, writer):
    try:
        while await read_head(reader):
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                b"Cache-Control: no-store\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(FIRST)
            )
            await writer.drain()
            for piece in LATER:
                await asyncio.sleep(TRICKLE_SECONDS)
                writer.write(chunk(piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass  # the probe hung up after the first byte, or the run is over
    writer.close()


def page_origin(body):
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )

    async def serve(reader, writer):
        try:
            while await read_head(reader):
                writer.write(head + body)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    return serve


def start_tagwarden(work, extra_toml=""):
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: cargo build --release")
    conf = os.path.join(work, "tagwarden.toml")
    with open(conf, "w") as f:
        f.write(
            f'rules = "{ROOT}/rules"\n[listen]\naddress = "127.0.0.1:{PROXY}"\n'
            f'[upstream]\nurl = "http://127.0.0.1:{ORIGIN}"\n[admin]\naddress = "127.0.0.1:{ADMIN}"\n'
            + extra_toml
        )
    log = open(os.path.join(work, "tagwarden.log"), "w")
    env = dict(os.environ, RUST_LOG="warn")
    return subprocess.Popen([BIN, "serve", "--config", conf], stdout=log, stderr=subprocess.STDOUT, env=env)


async def wait_port(port):
    for _ in range(100):
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    sys.exit(f"port {port} never opened")


async def one_ttfb(port):
    """Seconds to the first response byte and to the first body byte (one new connection)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    writer.write(b"GET /page.html HTTP/1.1\r\nHost: clinic.example\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
    await writer.drain()
    buf = b""
    first_byte = first_body = None
    while first_body is None:
        data = await reader.read(65536)
        if not data:
            break
        now = time.perf_counter()
        first_byte = first_byte or now
        buf += data
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0 and len(buf) > head_end + 4:
            first_body = now
    writer.close()
    if first_body is None:
        raise RuntimeError("no body")
    return first_byte - start, first_body - start


async def ttfb():
    runs = int(os.environ.get("TTFB_RUNS", "40"))
    server = await asyncio.start_server(trickling_origin, "127.0.0.1", ORIGIN)
    with tempfile.TemporaryDirectory() as work:
        proc = start_tagwarden(work)
        try:
            await wait_port(PROXY)
            direct, proxied = [], []
            for _ in range(3):  # warm-up
                await one_ttfb(PROXY)
            for _ in range(runs):  # alternate, so drift hits both alike
                direct.append(await one_ttfb(ORIGIN))
                proxied.append(await one_ttfb(PROXY))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    server.close()
    ms = lambda xs, i: statistics.median(x[i] for x in xs) * 1000  # noqa: E731
    p95 = lambda xs, i: sorted(x[i] for x in xs)[int(len(xs) * 0.95) - 1] * 1000  # noqa: E731
    print(f"P5 TTFB, {runs} runs each, origin sends the head at once then a piece every {TRICKLE_SECONDS * 1000:.0f} ms")
    for name, i in (("first response byte", 0), ("first body byte", 1)):
        print(
            f"  {name:20} origin median {ms(direct, i):6.2f} ms, through tagwarden {ms(proxied, i):6.2f} ms "
            f"(p95 {p95(proxied, i):6.2f}): difference {ms(proxied, i) - ms(direct, i):5.2f} ms (goal < 2 ms)"
        )


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def slow_client(stop, counts):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive window, so the response stays in tagwarden instead of our socket buffer.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", PROXY))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2048)
        writer.write(b"GET /page.html HTTP/1.1\r\nHost: clinic.example\r\nAccept: text/html\r\n\r\n")
        await writer.drain()
        got = 0
        while not stop.is_set():
            data = await reader.read(1024)
            if not data:
                break
            if got == 0:
                counts["answered"] += int(data.startswith(b"HTTP/1.1 200"))
            got += len(data)
            await asyncio.sleep(0.25)
        counts["bytes"] += got
        writer.close()
    except OSError:
        counts["failed"] += 1
        sock.close()


async def slow():
    clients = int(os.environ.get("CLIENTS", "1000"))
    seconds = float(os.environ.get("SLOW_SECONDS", "15"))
    with open(PAGE, "rb") as f:
        body = f.read()
    server = await asyncio.start_server(page_origin(body), "127.0.0.1", ORIGIN, backlog=4096)
    with tempfile.TemporaryDirectory() as work:
        proc = start_tagwarden(work, f"[limits]\nmax_connections_per_ip = {clients + 100}\n")
        try:
            await wait_port(PROXY)
            await one_ttfb(PROXY)  # one request first, so the baseline has the rules and pools warm
            idle, _ = rss_kib(proc.pid)
            stop = asyncio.Event()
            counts = {"answered": 0, "failed": 0, "bytes": 0}
            tasks = []
            for i in range(clients):
                tasks.append(asyncio.create_task(slow_client(stop, counts)))
                if i % 50 == 49:
                    await asyncio.sleep(0.05)
            peak = 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                peak = max(peak, rss_kib(proc.pid)[0])
                await asyncio.sleep(0.1)
            _, hwm = rss_kib(proc.pid)
            stop.set()
            await asyncio.wait(tasks, timeout=10)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    server.close()
    per_client = counts["bytes"] / max(1, clients)
    print(
        f"P7 slow clients: {clients} connections to a {len(body)}-byte page, each reading 1 KiB every 250 ms "
        f"for {seconds:.0f} s ({counts['answered']} answered 200, {counts['failed']} failed, "
        f"{per_client / 1024:.0f} KiB read each on average)"
    )
    print(
        f"  tagwarden RSS: idle {idle / 1024:.1f} MiB, peak sampled {peak / 1024:.1f} MiB, "
        f"VmHWM {hwm / 1024:.1f} MiB (goal < 256 MiB)"
    )


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "ttfb":
        asyncio.run(ttfb())
    elif mode == "slow":
        asyncio.run(slow())
    else:
        sys.exit(__doc__)
