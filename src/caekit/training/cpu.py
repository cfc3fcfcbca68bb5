"""CPU settings that the engine applies before training on the CPU when ``train.cpu_tuning`` asks for them.

Why the allocator matters: a training step of a convolutional autoencoder allocates the same few large activation
buffers (16 MB each for the reference CAE at batch 64) and frees them again. glibc's malloc serves blocks that large
with fresh ``mmap`` calls and hands them back to the kernel when freed, so every step page-faults its activations in
again; the zero-fills of unpooling and pooling gradients and the element-wise layers then run at a fraction of
memory speed. Keeping freed memory in the process, as jemalloc or tcmalloc would, removes that cost.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import cache

import torch

# mallopt parameters from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@cache
def retain_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and never give freed memory back to the kernel.

    Process-wide and permanent (the process keeps its peak memory until it exits). Linux with glibc only; returns
    whether the setting took effect (False elsewhere, e.g. macOS, Windows or musl).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def tuning_wanted(setting: bool | None) -> bool:
    """``train.cpu_tuning``: as set, else on when caekit runs as a command (the CLI sets CAEKIT_CPU_TUNING), off
    when it is imported as a library, whose process it must not change unasked."""
    if setting is not None:
        return setting
    return os.environ.get("CAEKIT_CPU_TUNING", "") not in ("", "0", "false")


def tune(retain_memory: bool = True) -> None:
    """Flush denormals (they slow CPU kernels by orders of magnitude near convergence) and, if asked, keep freed
    memory for reuse (see the module's docstring). ``untune`` turns the first back off; the allocator setting lasts
    as long as the process."""
    torch.set_flush_denormal(True)
    if retain_memory:
        retain_freed_memory()


def untune() -> None:
    torch.set_flush_denormal(False)
