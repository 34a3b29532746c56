"""Loops compiled by numba, for the work numpy can only do in many passes over an array."""

from __future__ import annotations

import functools
import threading


def compiled(function):
    """Compiles a loop with numba (nopython, the GIL released so that the bootstrap's threads
    run it side by side, the machine code cached on disk) on its first call.

    numba is imported then, not with this module: the web processes import the engine through
    the leaderboard's services but never resample, and numba with LLVM would add about 110 MB
    to each of them."""
    machine_code = None
    lock = threading.Lock()

    @functools.wraps(function)
    def call(*args):
        nonlocal machine_code
        if machine_code is None:
            with lock:
                if machine_code is None:
                    import numba

                    machine_code = numba.njit(cache=True, nogil=True)(function)
        return machine_code(*args)

    return call
