"""glibc malloc settings for processes that move many large buffers.

Every chunk on the byte path is a fresh bytes object of about 1 MiB, and
gunicorn's body reader grows and drops buffers of that size too. With
glibc's defaults, a block that large is often given by ``mmap`` and given
back by ``munmap``, or freed memory at the top of a thread's heap is handed
back to the kernel at once; the next chunk then touches new pages and every
4 KiB page costs a fault. Measured on relayed uploads through gunicorn's
own body reader: 200,000 to 350,000 page faults per GiB in the API and up
to 170,000 in the geo service, a quarter to a third of their CPU; chunked
uploads still take that path. With the thresholds below the same memory is
reused from chunk to chunk: about 1,000 faults per GiB.

The thresholds need each other: a fixed mmap threshold alone leaves the trim
threshold at 128 KiB (still faulting), and a trim threshold alone fixes the
mmap threshold at 128 KiB (far worse). Neither raises peak memory: what is
kept is what a process already used at its busiest.
"""

import ctypes
import ctypes.util

from handoff.units import MiB

# From glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 16 * MiB
TRIM_THRESHOLD = 64 * MiB


def keep_freed_memory() -> bool:
    """Make this process (and children forked later) reuse freed large blocks.

    Returns False where there is no glibc ``mallopt`` (musl, macOS), which
    leaves the allocator as it is.
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
