#!/usr/bin/env python3
"""The kernel's share of SQLite's log writes per append, with no SQLite at all (issue 20, goal 2).

Not a test; see docs/sqlite.md, "The floor under the writer's CPU". SQLite's WAL writes
each page a transaction changed as one frame, in two `pwrite` calls (a 24-byte frame
header, then the 4 KiB page), and `synchronous=FULL` syncs the log once per commit. An
append of schema 6 writes about 7 frames (BENCHMARKS.md, "The append's shape"); the
append_throughput benchmark commits about 8 appends per batch. This replays exactly those
system calls on a preallocated file (as SQLite reuses its log after a restart) and
prints the CPU they cost per append, user and system, with and without the syncs.

    python3 bench/wal-floor.py [frames=7] [appends-per-commit=8] [dir=/var/tmp]
"""
import os
import resource
import sys

FRAMES = int(sys.argv[1]) if len(sys.argv) > 1 else 7
BATCH = int(sys.argv[2]) if len(sys.argv) > 2 else 8
DIR = sys.argv[3] if len(sys.argv) > 3 else "/var/tmp"
APPENDS = 20000
FRAME = 24 + 4096

path = os.path.join(DIR, f"wal-floor-{os.getpid()}.dat")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
size = FRAME * FRAMES * BATCH * 64
os.write(fd, b"\0" * size)
os.fsync(fd)
header, page = b"h" * 24, b"p" * 4096


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime


def run(sync):
    offset = 0
    u0, s0 = cpu()
    for a in range(APPENDS):
        for _ in range(FRAMES):
            os.pwrite(fd, header, offset)
            os.pwrite(fd, page, offset + 24)
            offset = (offset + FRAME) % (size - FRAME)
        if sync and a % BATCH == BATCH - 1:
            os.fdatasync(fd)
    u1, s1 = cpu()
    return (u1 - u0) / APPENDS * 1e6, (s1 - s0) / APPENDS * 1e6


try:
    print(f"{FRAMES} frames ({2 * FRAMES} pwrite calls) per append, one fdatasync per {BATCH} appends, in {DIR}")
    for sync in (False, True, False, True):
        user, system = run(sync)
        label = f"with fdatasync every {BATCH}" if sync else "pwrite only"
        print(f"  {label:24}: user {user:5.1f} us, system {system:5.1f} us per append")
finally:
    os.close(fd)
    os.unlink(path)
