"""Load-by-load A/B timing of a C loader and bpfsign in one process.

Used by bench_corpus.py and bench_load.py. The C side is a shared library whose
``int f(long n, long long *out)`` runs n load+close cycles and writes, per cycle, the
wall-clock (CLOCK_MONOTONIC) and this thread's CPU nanoseconds (out[2i], out[2i+1]);
the Python side is timed the same way around ``Loader.load().close()``. Both run in
this process, alternating load by load (ABBA), so they see the same fd table, address
space, page cache and machine load, and drift cancels pair by pair. A C process of its
own is not like with like: its start-up, fresh address space and exit (which frees the
batch's last objects) differ, and batches put seconds between the samples compared.

Thread CPU time (user + kernel: the loader program and the programs it loads run in
the caller's context) is what a load costs and what other processes cannot inflate;
the wall clock is what a caller waits, and they can. The deferred frees of closed
maps and programs (RCU callbacks, workqueues) run in other threads: neither side is
charged for them on the CPU clock, and both alike on the wall clock.
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TARGET = 1.05  # issues 4 and 9: bpfsign median <= 1.05x C, per header
CLOCKS = ("cpu", "wall")


@dataclass
class Side:
    """One side's samples, in µs."""

    wall: list[float]
    cpu: list[float]

    def median(self, clock: str) -> float:
        return statistics.median(getattr(self, clock))


@dataclass
class Result:
    c: Side
    py: Side

    def ratio(self, clock: str) -> float:
        return self.py.median(clock) / self.c.median(clock)

    def pair_quartiles(self, clock: str) -> list[float]:
        c, py = getattr(self.c, clock), getattr(self.py, clock)
        return statistics.quantiles([p / q for p, q in zip(py, c, strict=True)], n=4)


def c_function(library: Path, name: str) -> Callable[[int, ctypes.Array[ctypes.c_longlong]], int]:
    """``int name(long n, long long *out)`` of ``library``, loaded into this process."""
    fn = getattr(ctypes.CDLL(str(library)), name)
    fn.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_longlong)]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def measure(
    c_fn: Callable[[int, ctypes.Array[ctypes.c_longlong]], int],
    py_load: Callable[[], object],
    pairs: int,
    warmup: int = 10,
    what: str = "",
) -> Result:
    """``pairs`` C and bpfsign load+close cycles, alternating ABBA; ``py_load`` returns
    something with ``close()``."""
    out = (ctypes.c_longlong * 2)()
    wall, cpu = time.perf_counter_ns, time.thread_time_ns

    def one_c() -> tuple[int, int]:
        err = c_fn(1, out)
        if err:
            raise SystemExit(f"{what}: the C loader failed (errno {err})")
        return out[0], out[1]

    def one_py() -> tuple[int, int]:
        t, u = wall(), cpu()
        py_load().close()  # type: ignore[attr-defined]
        u2 = cpu()
        return wall() - t, u2 - u

    for _ in range(warmup):
        one_c()
        one_py()
    cs: list[tuple[int, int]] = []
    ps: list[tuple[int, int]] = []
    gc.collect()
    for i in range(pairs):
        if i % 2 == 0:  # ABBA: neither side always runs right after the other
            cs.append(one_c())
            ps.append(one_py())
        else:
            ps.append(one_py())
            cs.append(one_c())

    def side(v: list[tuple[int, int]]) -> Side:
        return Side([w / 1000 for w, _ in v], [u / 1000 for _, u in v])

    return Result(side(cs), side(ps))


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def header(name_width: int, pairs: int, c_what: str) -> str:
    """The table's preamble and column heads."""
    with open("/proc/sys/kernel/osrelease") as f:
        kernel = f.read().strip()
    import os

    head = (
        f"{'header':<{name_width}} {'C cpu':>8} {'bpfsign':>8} {'ratio':>6} {'[q1':>6} {'q3]':>6}"
        f" | {'C wall':>8} {'bpfsign':>8} {'ratio':>6} {'[q1':>6} {'q3]':>6}"
    )
    return (
        f"load+close, kernel {kernel}, {os.cpu_count()} CPUs, load average {loadavg()}\n"
        f"C ({c_what}, in this process) and bpfsign alternate load by load, {pairs} pairs per "
        f"header; medians in µs;\nratio = bpfsign median / C median, [q1 q3] = quartiles of the "
        f"per-pair ratios; target <= {TARGET}x per header on each clock\n{head}\n{'-' * len(head)}"
    )


def row(name: str, name_width: int, r: Result) -> str:
    cells = []
    for clock in CLOCKS:
        q1, _, q3 = r.pair_quartiles(clock)
        cells.append(
            f"{r.c.median(clock):>8.1f} {r.py.median(clock):>8.1f} {r.ratio(clock):>6.3f} "
            f"{q1:>6.3f} {q3:>6.3f}"
        )
    over = [c for c in CLOCKS if r.ratio(c) > TARGET]
    flag = f"  > target ({', '.join(over)})" if over else ""
    return f"{name:<{name_width}} {cells[0]} | {cells[1]}{flag}"


def summary(results: list[Result]) -> list[str]:
    lines = []
    for clock in CLOCKS:
        ratios = [r.ratio(clock) for r in results]
        if ratios:
            lines.append(
                f"{clock}: {len(ratios)} headers: median ratio {statistics.median(ratios):.3f}, "
                f"worst {max(ratios):.3f}, {sum(x <= TARGET for x in ratios)}/{len(ratios)} "
                f"within {TARGET}x"
            )
    lines.append(f"load average at the end: {loadavg()}")
    return lines
