"""What a TLS read's buffer costs under glibc's malloc thresholds: the old 128 KiB pin against serve's (grpc5).

uvloop reads TLS with `SSLObject.read(256 KiB)`: CPython allocates a 256 KiB bytes object, the record fills
its first page, `_PyBytes_Resize` shrinks it to what was read, and it is freed. This does the same with
glibc's malloc, realloc and free, 20,000 times, each setting in a fresh process (the heap's history decides
where a block comes from), with a second thread running Python (an munmap's TLB shootdown reaches every
running thread, as in the gateway). CPU time a read, best of 3; nothing asserted. (With real TLS records,
`SSLObject.read` over memory BIOs as in tests/unit/test_eventloop_memory.py: 16.0-16.3 us against 3.4-3.5.)

    .venv/bin/python bench/malloc_reads.py
"""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import ctypes, sys, threading, time
from gateway.eventloop import pin_malloc_thresholds

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.realloc.restype = ctypes.c_void_p, ctypes.c_void_p
libc.realloc.argtypes, libc.free.argtypes = [ctypes.c_void_p, ctypes.c_size_t], [ctypes.c_void_p]
if sys.argv[1] == "serve":
    assert pin_malloc_thresholds()
else:
    assert libc.mallopt(-3, 128 * 1024)

stop = False
def spin():
    while not stop:
        sum(range(1000))
threading.Thread(target=spin, daemon=True).start()
best = float("inf")
for _ in range(3):
    started = time.thread_time()
    for _ in range(20000):
        block = libc.malloc(256 * 1024 + 33)  # a bytes object of 256 KiB
        ctypes.memset(block, 1, 4096)  # the record read into it
        libc.free(libc.realloc(block, 4096 + 33))  # shrunk to what was read, then freed
    best = min(best, (time.thread_time() - started) / 20000)
stop = True
print(f"{best * 1e6:.2f}")
"""


def main() -> None:
    for how, what in (("128k", "mmap threshold pinned at 128 KiB (before)"), ("serve", "serve's thresholds")):
        done = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, check=True)
        print(f"{what}: {done.stdout.strip()} us a read's buffer")


if __name__ == "__main__":
    main()
