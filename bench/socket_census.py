"""How many TCP connections a process opens (as a client) while it runs: each one to an HTTPS API server is a TLS
handshake. Run beside a bench: `socket_census.py --parent PID` finds PID's child `podgate serve` and samples it.

Every `--every` seconds the process's socket inodes (/proc/PID/fd) are matched to /proc/net/tcp{,6}; a socket
counts as a client connection when its local port is none of the process's listening ports. A connection opened
and closed between two samples is missed, so the count is a floor (aiohttp keeps its connections alive for
seconds, an HTTP/2 connection for the life of its streams). Prints the distinct connections seen and the most
open at once. Linux only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

LISTEN = "0A"


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def client_sockets(pid: int) -> set[str]:
    """The inodes of `pid`'s TCP sockets that it opened as a client (local port not one it listens on)."""
    mine = socket_inodes(pid)
    rows = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in mine:
                rows.append((fields[1].rsplit(":", 1)[1], fields[3], fields[9]))
    listening = {port for port, state, _ in rows if state == LISTEN}
    return {inode for port, state, inode in rows if state != LISTEN and port not in listening}


def find_gateway(parent: int, within: float) -> int:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                if entry.isdigit() and Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(
                    parent
                ):
                    command = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
                    if b"serve" in command:
                        return int(entry)
        time.sleep(0.2)
    raise SystemExit(f"no `podgate serve` child of {parent} within {within:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parent", type=int, required=True, help="the bench's pid (its child gateway is sampled)")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between samples")
    args = parser.parse_args()
    pid = find_gateway(args.parent, 120.0)
    seen: set[str] = set()
    most = 0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        while True:
            now = client_sockets(pid)
            seen |= now
            most = max(most, len(now))
            time.sleep(args.every)
    print(f"gateway {pid}: client TCP connections opened (sampled every {args.every} s): {len(seen)}; "
          f"at most {most} open at once")  # fmt: skip


if __name__ == "__main__":
    main()
