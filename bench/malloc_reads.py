"""What a TLS read costs under glibc's malloc thresholds: the old 128 KiB pin against serve's (helper grpc5).

uvloop reads TLS with `SSLObject.read(256 KiB)`: a 256 KiB bytes object, shrunk to what was read. Each
setting runs in a fresh process (the heap's history decides where a block comes from), with a second thread
running Python (an munmap's TLB shootdown reaches every running thread, as in the gateway); a 4,000-byte
record is written and read 20,000 times over memory BIOs. CPU time a read (the record's encryption and
decryption included), best of 3; nothing asserted.

    .venv/bin/python bench/malloc_reads.py
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import ctypes, ssl, sys, threading, time
from gateway.eventloop import pin_malloc_thresholds
from gateway.sim.tls import CertificateAuthority, client_context, server_context

if sys.argv[1] == "serve":
    assert pin_malloc_thresholds()
elif sys.argv[1] == "128k":
    assert ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)

ca = CertificateAuthority("bench")
bios = {"server": (ssl.MemoryBIO(), ssl.MemoryBIO()), "client": (ssl.MemoryBIO(), ssl.MemoryBIO())}
server = server_context(ca, ca.issue_server()).wrap_bio(*bios["server"], server_side=True)
client = client_context(ca.cert_pem).wrap_bio(*bios["client"], server_hostname="127.0.0.1")

def pump(source, sink):
    data = bios[source][1].read()
    if data:
        bios[sink][0].write(data)
    return bool(data)

for _ in range(20):
    for side in (client, server):
        try:
            side.do_handshake()
        except ssl.SSLWantReadError:
            pass
    if not (pump("client", "server") | pump("server", "client")):
        break

stop = False
def spin():
    while not stop:
        sum(range(1000))
threading.Thread(target=spin, daemon=True).start()
record, best = b"x" * 4000, float("inf")
for _ in range(3):
    started = time.thread_time()
    for _ in range(20000):
        server.write(record)
        pump("server", "client")
        client.read(256 * 1024)
    best = min(best, (time.thread_time() - started) / 20000)
stop = True
print(f"{best * 1e6:.2f}")
"""


def main() -> None:
    for how, what in (("128k", "mmap threshold pinned at 128 KiB (before)"), ("serve", "serve's thresholds")):
        done = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, check=True)
        print(f"{what}: {done.stdout.strip()} us a TLS read")


if __name__ == "__main__":
    main()
