"""The real-world corpus: bpfsign load+close against libbpf's skel_internal.h, and
parse+sign of the largest header against ``bpftool gen skeleton -S``.

Run (root, on a kernel with a usable bpf(); the sign part needs the corpus cache made
by ``bash tests/corpus/generate.sh``, for the linked object and the 7.3.4 bpftool):

    .venv/bin/python bench/bench_corpus.py [--pairs 400] [--sign-runs 15] [--only NAME]

Load+close: for every corpus header both loaders can load on this kernel, the C
reference (tests/corpus/refload.c built against the skel_internal.h matching its
bpftool, as a shared library: ``ref_bench`` runs the header's own ``__open_and_load``
+ ``__destroy``) and bpfsign (``Loader.load()`` + ``LoadedSkeleton.close()``; the parse
and plan are done once, outside the timing, as the C compiler does them once) run
in the same process, one load each, alternating (ABBA), for ``--pairs`` pairs. So
both see the same fd table, address space, page cache and machine load, nothing
but the loader differs, and drift cancels pair by pair. A separate process for C
(the old way) is not like with like: its start-up, fresh address space and exit
(which frees the batch's last objects) differ, and batches of 50 loads put
seconds between the samples being compared.

Two clocks per load, each measured around one load on the side itself (C times
inside refload.c): this thread's CPU time (user + kernel: the loader program and
the programs it loads run in the caller's context) -- what the loader costs, and
what other processes on a shared machine cannot inflate -- and the wall clock
(CLOCK_MONOTONIC), which they can. The deferred frees of closed maps and programs
(RCU callbacks, workqueues) run in other threads: neither side is charged for them
on the CPU clock, and both alike on the wall clock.

Reported per header: medians of each side, the ratio of the medians, and the
quartiles of the per-pair ratios (how stable it is). Target: ratio <= 1.05x per
header (issue 9), on both clocks; the CPU clock is the one a shared machine
cannot blur.

Sign: whole processes, interleaved, medians: ``python -m bpfsign sign -o OUT`` of the
largest header (parse, sign, render, write) against the 7.3.4 bpftool's
``gen skeleton -S`` of the same linked object (open, generate the loader, sign, print).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
sys.path.insert(0, str(CORPUS))
sys.path.insert(0, str(REPO / "src"))

import checks  # noqa: E402
import refload  # noqa: E402

import bpfsign  # noqa: E402

TARGET = 1.05
WARMUP = 10


@dataclass
class Side:
    """One side's samples, in µs: wall clock and this thread's CPU time."""

    wall: list[float]
    cpu: list[float]


@dataclass
class Result:
    c: Side
    py: Side

    def ratio(self, clock: str) -> float:
        return statistics.median(getattr(self.py, clock)) / statistics.median(
            getattr(self.c, clock)
        )

    def pair_quartiles(self, clock: str) -> list[float]:
        pairs = [p / c for p, c in zip(getattr(self.py, clock), getattr(self.c, clock), strict=True)]
        return statistics.quantiles(pairs, n=4)


def c_bench(header: Path) -> ctypes._CFuncPtr:
    """refload.c's ``ref_bench`` for ``header``, in this process."""
    lib = ctypes.CDLL(str(refload.binary(header, shared=True)))
    fn = lib.ref_bench
    fn.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_longlong)]
    fn.restype = ctypes.c_int
    return fn


def bench_load(h: Path, pairs: int) -> Result | str:
    c = refload.run(h)
    if not c["ok"]:
        return f"C fails ({c['step']}, errno {c['errno']})"
    try:
        first = bpfsign.load_skeleton(h)
    except (bpfsign.Error, OSError) as exc:
        return f"bpfsign fails ({type(exc).__name__}: {str(exc).splitlines()[0][:60]})"
    skel = first.skeleton
    first.close()
    ld = bpfsign.Loader(skel)
    ref = c_bench(h)
    out = (ctypes.c_longlong * 2)()
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    load = ld.load

    def one_c() -> tuple[int, int]:
        err = ref(1, out)
        if err:
            raise SystemExit(f"{h.name}: the C reference failed to load (errno {err})")
        return out[0], out[1]

    def one_py() -> tuple[int, int]:
        t, u = wall(), cpu()
        load().close()
        u2 = cpu()
        return wall() - t, u2 - u

    for _ in range(WARMUP):
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


def _time(cmd: list[str], out: Path | None = None) -> float:
    t = time.perf_counter()
    if out is None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    else:
        with out.open("w") as f:
            subprocess.run(cmd, check=True, stdout=f)
    return (time.perf_counter() - t) * 1000


def bench_sign(runs: int) -> None:
    cache = Path(os.environ.get("BPFSIGN_CORPUS_CACHE", CORPUS / ".cache"))
    fcache = Path(os.environ.get("BPFSIGN_FIXTURE_CACHE", REPO / "tests" / "fixtures" / ".cache"))
    largest = max(
        (h for h in refload.headers() if ".v73.signed." in h.name), key=lambda p: p.stat().st_size
    )
    prog = largest.name.split(".", 1)[0]
    obj = cache / "build" / "obj" / f"{prog}.llinked3.o"
    libc = fcache / "root" / "libc6" / "usr" / "lib" / "x86_64-linux-gnu"
    bpftool = [
        str(libc / "ld-linux-x86-64.so.2"),
        "--library-path",
        f"{libc}:/lib/x86_64-linux-gnu",
        str(cache / "root" / "bpftool" / "usr" / "sbin" / "bpftool"),
    ]
    if not obj.exists() or not Path(bpftool[-1]).exists():
        print(
            f"sign: skipped, {obj} or the 7.3.4 bpftool is missing (run bash tests/corpus/generate.sh)"
        )
        return
    keys = REPO / "tests" / "fixtures" / "keys"
    key, cert = keys / "TEST-ONLY-lskel-signing.key.pem", keys / "TEST-ONLY-lskel-signing.cert.pem"
    with tempfile.TemporaryDirectory(prefix="bpfsign-bench-") as tmp:
        out = Path(tmp) / "out.lskel.h"
        gen = [
            *bpftool,
            "gen",
            "skeleton",
            "-S",
            "-k",
            str(key),
            "-i",
            str(cert),
            str(obj),
            "name",
            f"{prog}_lskel",
        ]
        ours = [
            sys.executable,
            "-m",
            "bpfsign",
            "sign",
            "--key",
            str(key),
            "--cert",
            str(cert),
            "-o",
            str(out),
            str(largest),
        ]
        start = [sys.executable, "-c", "import bpfsign"]
        bt, st, pt = [], [], []
        for i in range(runs + 2):
            b = _time(gen, Path(tmp) / "bpftool.lskel.h")
            s = _time(ours)
            p = _time(start)
            if i >= 2:  # warm-up
                bt.append(b)
                st.append(s)
                pt.append(p)
        same = (
            out.read_bytes() == largest.read_bytes() == (Path(tmp) / "bpftool.lskel.h").read_bytes()
        )
    bm, sm, pm = statistics.median(bt), statistics.median(st), statistics.median(pt)
    print(
        f"\nparse+sign of the largest header, {largest.name} ({largest.stat().st_size} bytes), "
        f"medians of {runs} interleaved process runs:"
    )
    print(f"  bpftool 7.3.4 gen skeleton -S (from {obj.name}): {bm:8.1f} ms")
    print(f"  bpfsign sign -o (parse, sign, render, write):   {sm:8.1f} ms   ratio {sm / bm:.2f}x")
    print(
        f"  of which Python start-up + import bpfsign:      {pm:8.1f} ms   "
        f"(without it: {sm - pm:.1f} ms, ratio {(sm - pm) / bm:.2f}x)"
    )
    print(f"  outputs byte-identical (bpfsign, bpftool, committed header): {same}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=400, help="timed C+bpfsign load pairs per header")
    ap.add_argument("--sign-runs", type=int, default=15)
    ap.add_argument("--only", help="substring of the header names to time")
    ap.add_argument("--no-sign", action="store_true")
    ap.add_argument(
        "--trust-test-cert",
        action="store_true",
        help="add the TEST-ONLY cert to a fresh session keyring first (signed loads)",
    )
    args = ap.parse_args(argv)
    if args.pairs < 4:
        ap.error("--pairs must be at least 4 (quartiles)")
    if os.geteuid() != 0:
        raise SystemExit("needs root (bpf())")
    if args.trust_test_cert:
        checks.trust_test_cert_in_session()
    with open("/proc/sys/kernel/osrelease") as f:
        kernel = f.read().strip()
    with open("/proc/loadavg") as f:
        loadavg = " ".join(f.read().split()[:3])
    print(
        f"corpus load+close, kernel {kernel}, {os.cpu_count()} CPUs, load average {loadavg}\n"
        f"C (skel_internal.h, in-process) and bpfsign alternate load by load, {args.pairs} pairs "
        f"per header; medians in µs;\nratio = bpfsign median / C median, [q1 q3] = quartiles of "
        f"the per-pair ratios; target <= {TARGET}x per header on each clock"
    )
    head = (
        f"{'header':<40} {'C cpu':>8} {'bpfsign':>8} {'ratio':>6} {'[q1':>6} {'q3]':>6}"
        f" | {'C wall':>8} {'bpfsign':>8} {'ratio':>6} {'[q1':>6} {'q3]':>6}"
    )
    print(head)
    print("-" * len(head))
    rows: list[tuple[str, Result]] = []
    skipped = []
    for h in refload.headers():
        if args.only and args.only not in h.name:
            continue
        r = bench_load(h, args.pairs)
        if isinstance(r, str):
            skipped.append((h.name, r))
            continue
        rows.append((h.name, r))
        cells = []
        for clock in ("cpu", "wall"):
            q1, _, q3 = r.pair_quartiles(clock)
            ratio = r.ratio(clock)
            cells.append(
                f"{statistics.median(getattr(r.c, clock)):>8.1f} "
                f"{statistics.median(getattr(r.py, clock)):>8.1f} {ratio:>6.3f} {q1:>6.3f} {q3:>6.3f}"
            )
        flags = [c for c in ("cpu", "wall") if r.ratio(c) > TARGET]
        flag = f"  > target ({', '.join(flags)})" if flags else ""
        print(f"{h.name:<40} {cells[0]} | {cells[1]}{flag}", flush=True)
    for clock in ("cpu", "wall"):
        ratios = [r.ratio(clock) for _, r in rows]
        if ratios:
            print(
                f"{clock}: timed {len(ratios)} headers: median ratio {statistics.median(ratios):.3f}, "
                f"worst {max(ratios):.3f}, {sum(x <= TARGET for x in ratios)}/{len(ratios)} "
                f"within {TARGET}x"
            )
    with open("/proc/loadavg") as f:
        print(f"load average at the end: {' '.join(f.read().split()[:3])}")
    for name, why in skipped:
        print(f"not timed: {name}: {why}")
    if not args.no_sign:
        bench_sign(args.sign_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
