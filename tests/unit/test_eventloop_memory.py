"""glibc's malloc thresholds pinned by `podgate serve`: a TLS read's 256 KiB buffer (uvloop's SSLProtocol reads
at most that much at a time) is heap work, not an mmap, an mremap and an munmap per read. Run in a fresh
process: the heap's history decides where a block comes from."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, ssl, sys
from gateway.eventloop import MMAP_THRESHOLD, pin_malloc_thresholds
from gateway.sim.tls import CertificateAuthority, client_context, server_context

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes, libc.mallinfo2.restype = ctypes.c_void_p, [ctypes.c_void_p], MallInfo2
if sys.argv[1] == "serve":
    assert pin_malloc_thresholds()
else:  # the pin before Dec 5: each TLS connection's 256 KiB buffer in a mapping of its own
    assert libc.mallopt(-3, 128 * 1024)

ca = CertificateAuthority("probe")
bios = {"server": (ssl.MemoryBIO(), ssl.MemoryBIO()), "client": (ssl.MemoryBIO(), ssl.MemoryBIO())}
server = server_context(ca, ca.issue_server()).wrap_bio(*bios["server"], server_side=True)
client = client_context(ca.cert_pem).wrap_bio(*bios["client"], server_hostname="127.0.0.1")

def pump(source, sink):  # what one side wrote, to the other side's incoming
    data = bios[source][1].read()
    if data:
        bios[sink][0].write(data)
    return bool(data)

for _ in range(20):  # the handshake, over memory
    for side in (client, server):
        try:
            side.do_handshake()
        except ssl.SSLWantReadError:
            pass
    if not (pump("client", "server") | pump("server", "client")):
        break

held, before = [], libc.mallinfo2().hblks
for i in range(50):  # 50 reads as uvloop makes them, each result kept (as a protocol keeps its chunks)
    server.write(b"x" * 4000)
    pump("server", "client")
    held.append(client.read(256 * 1024))
assert all(len(chunk) == 4000 for chunk in held)
big = libc.malloc(2 * MMAP_THRESHOLD)  # a block above the threshold still gets a mapping of its own
print(libc.mallinfo2().hblks - before - 1)
libc.free(big)
"""


@pytest.mark.parametrize(("how", "mapped"), [("serve", "0"), ("pinned at 128 KiB", "50")])
def test_a_tls_reads_buffer_comes_from_the_heap_with_serves_malloc_thresholds(how: str, mapped: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == mapped
