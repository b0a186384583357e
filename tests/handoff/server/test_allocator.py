import ctypes.util

import pytest

from handoff.server.allocator import keep_freed_memory


@pytest.mark.skipif(ctypes.util.find_library("c") is None, reason="no C library to configure")
def test_glibc_takes_the_thresholds() -> None:
    assert keep_freed_memory() is True
