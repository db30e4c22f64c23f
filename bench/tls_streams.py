"""What one idle HTTPS log stream costs the gateway's process: RSS per stream held open with aiohttp.

The gateway holds one HTTP/1.1 connection per followed log (Kubernetes' log API). Here a local aiohttp
server (self-signed certificate) answers each GET with one line and then stays silent, as a container's
log does; a client process opens N such streams after a warm-up and reports its RSS growth per stream.
Each variant runs in a process of its own (the event loop and malloc settings are per process).

    .venv/bin/python bench/tls_streams.py [--streams 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import datetime
import gc
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = (  # (what, server, client options)
    ("TLS 1.3, server sends 2 session tickets (Python's default, as the simulator)", "tls", ""),
    ("same, glibc's mmap threshold pinned (podgate serve)", "tls", "mmap"),
    ("TLS 1.3, server sends no ticket", "tls-noticket", ""),
    ("TLS 1.2", "tls", "tls12"),
    ("plain HTTP", "plain", ""),
    ("TLS 1.3 on asyncio's loop", "tls", "asyncio"),
)
PORTS = {"tls": 0, "tls-noticket": 1, "plain": 2}
M_MMAP_THRESHOLD = -3


def certificate(directory: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def serve(kind: str, port: int, directory: Path) -> None:
    from aiohttp import web

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"2026-12-04T00:00:00Z hello\n")
        await asyncio.sleep(3600)
        return response

    context = None
    if kind != "plain":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.num_tickets = 0 if kind == "tls-noticket" else 2
        context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    app = web.Application()
    app.router.add_get("/", stream)
    web.run_app(app, host="127.0.0.1", port=port, ssl_context=context, print=None, backlog=4096)


def rss() -> int:
    return int(Path(f"/proc/{os.getpid()}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def hold(streams: int, url: str, options: str, directory: Path) -> float:
    """RSS growth per stream, in bytes, over `streams` idle streams opened after a warm-up."""
    import aiohttp

    context = ssl.create_default_context(cafile=str(directory / "cert.pem"))
    if "tls12" in options:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    connector = aiohttp.TCPConnector(limit=0, ssl=context if url.startswith("https") else False)
    async with aiohttp.ClientSession(connector=connector) as session:
        held = []

        async def one() -> None:
            response = await session.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None))
            await response.content.readline()
            held.append(response)

        await asyncio.gather(*(one() for _ in range(50)))
        gc.collect()
        before = rss()
        for opened in range(0, streams, 100):  # in hundreds, exactly `streams` (the figure divides by it)
            await asyncio.gather(*(one() for _ in range(min(100, streams - opened))))
        gc.collect()
        await asyncio.sleep(1)
        grown = (rss() - before) / streams
        for response in held:
            response.close()
        return grown


def client(streams: int, url: str, options: str, directory: Path) -> None:
    if "mmap" in options:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    if "asyncio" in options:
        grown = asyncio.run(hold(streams, url, options, directory))
    else:
        import uvloop

        grown = uvloop.run(hold(streams, url, options, directory))
    print(f"{grown / 1024:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--hold", nargs=4, metavar=("N", "URL", "OPTIONS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), Path(args.serve[2]))
        return
    if args.hold:
        client(int(args.hold[0]), args.hold[1], args.hold[2], Path(args.hold[3]))
        return
    directory = Path(tempfile.mkdtemp(prefix="podgate-tls-streams-"))
    certificate(directory)
    base = 20000 + os.getpid() % 20000
    servers = [
        subprocess.Popen([sys.executable, __file__, "--serve", kind, str(base + i), str(directory)])
        for kind, i in PORTS.items()
    ]
    try:
        time.sleep(3)
        print(f"RSS per idle log stream held with aiohttp, over {args.streams} streams:")
        for what, kind, options in VARIANTS:
            scheme = "http" if kind == "plain" else "https"
            url = f"{scheme}://localhost:{base + PORTS[kind]}/"
            run = [sys.executable, __file__, "--hold", str(args.streams), url, options or "-", str(directory)]
            done = subprocess.run(run, capture_output=True, text=True, timeout=600, check=True)
            print(f"  {done.stdout.strip():>7} KiB  {what}", flush=True)
    finally:
        stop_all(servers, directory)


def stop_all(servers: list[subprocess.Popen[Any]], directory: Path) -> None:
    """Terminates the stream servers (one whose handler still holds a stream, which keeps it from shutting
    down, is killed after 10 s), then removes their certificate directory."""
    for server in servers:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
