"""glibc's mmap threshold pinned by `podgate serve`: a TLS connection's 256 KiB read buffer gets a mapping of
its own (untouched pages never resident) even after the gateway freed a larger block. Run in a fresh
process: the heap's history decides where a block comes from."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from gateway.eventloop import map_large_blocks

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes, libc.mallinfo2.restype = ctypes.c_void_p, [ctypes.c_void_p], MallInfo2
if sys.argv[1] == "pinned":
    assert map_large_blocks()
libc.free(libc.malloc(1024 * 1024))  # unpinned, glibc now serves blocks up to 1 MiB from the heap
before = libc.mallinfo2().hblks
block = libc.malloc(256 * 1024)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.parametrize(("how", "mapped"), [("pinned", "1"), ("default", "0")])
def test_a_256_kib_block_is_mapped_after_a_larger_one_was_freed_only_when_pinned(how: str, mapped: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == mapped
