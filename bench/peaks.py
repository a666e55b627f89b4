"""Peak resource figures of a process, with no project import (children import it before the step)."""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path


def peak_rss_kib() -> int:
    """This process's peak resident set: VmHWM of its own address space. Not getrusage alone: Linux
    carries ru_maxrss across exec, so a child forked from a big parent would report the parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def disk_bytes(root: Path) -> int:
    """Bytes allocated on disk under `root` (st_blocks, so sparse files count as written)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # gone while walking: a temp file
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total
