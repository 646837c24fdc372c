"""Light-skeleton load+close latency: bpfsign's Python loader against C.

Run (root, on a kernel with a usable bpf()):
    .venv/bin/python bench/bench_load.py [--iterations 400] [--batch 50] [--profile]

For every unsigned fixture header, a C harness that includes the header and
calls ``<name>__open_and_load()`` + ``<name>__destroy()`` is built here with gcc
and Debian 12's libbpf 1.1 ``bpf/skel_internal.h``. It stays running and times
batches on request, so C and Python batches interleave in the same run on the
same kernel (drift cancels) and process start-up is not counted on either side.
Python times ``Loader.load()`` + ``LoadedSkeleton.close()``; the one-time parse
and plan (the C compiler's job on the C side) is reported separately.

Target (issue 4): Python median <= 1.05x the C median.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIN_ITERATIONS = 200  # issue 4: medians over at least 200 iterations
sys.path.insert(0, str(REPO / "src"))

from bpfsign.kernel import loader as _loader  # noqa: E402
from bpfsign.skel import skeleton as _skeleton  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "skel"
HEADERS = (
    "sockfilter.lskel.h",
    "sockfilter.v71.lskel.h",
    "counter.lskel.h",
    "counter.v71.lskel.h",
    "multi.lskel.h",
    "multi.v71.lskel.h",
)
TARGET = 1.05
WARMUP = 5

HARNESS = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <linux/types.h>
%(types)s#include "%(header)s"

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(void)
{
	int n;
	/* one request per line: "N" -> N timings in ns, one per line */
	while (scanf("%%d", &n) == 1) {
		for (int i = 0; i < n; i++) {
			long long t = now_ns();
			struct %(name)s *skel = %(name)s__open_and_load();
			if (!skel) {
				fprintf(stderr, "%(name)s__open_and_load: errno %%d\n", errno);
				return 1;
			}
			%(name)s__destroy(skel);
			printf("%%lld\n", now_ns() - t);
		}
		fflush(stdout);
	}
	return 0;
}
"""


class CHarness:
    """A compiled harness process that times batches on request."""

    def __init__(self, header: Path, name: str, workdir: Path) -> None:
        src = workdir / f"{header.stem}.c"
        exe = workdir / header.stem.replace(".", "_")
        # struct-typed globals need their types first (multi.h next to multi.bpf.c)
        types_h = REPO / "tests" / "fixtures" / "bpf" / f"{name}.h"
        types = f'#include "{types_h}"\n' if types_h.exists() else ""
        src.write_text(HARNESS % {"header": header, "name": name, "types": types})
        subprocess.run(
            ["gcc", "-O2", "-o", str(exe), str(src), "-I", str(header.parent)],
            check=True,
            capture_output=True,
            text=True,
        )
        self.proc = subprocess.Popen(
            [str(exe)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def batch(self, n: int) -> list[float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        out = []
        for _ in range(n):
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"C harness died (exit {self.proc.wait()})")
            out.append(int(line) / 1000)
        return out

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def python_batch(ld: _loader.Loader, n: int) -> list[float]:
    out = []
    clock = time.perf_counter_ns
    load = ld.load
    for _ in range(n):
        t = clock()
        load().close()
        out.append((clock() - t) / 1000)
    return out


def bench(header: Path, iterations: int, batch: int, workdir: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    skel = _skeleton.load(header)
    ld = _loader.Loader(skel)
    plan_ms = (time.perf_counter() - t0) * 1000
    harness = CHarness(header, skel.name, workdir)
    c_times: list[float] = []
    py_times: list[float] = []
    try:
        harness.batch(WARMUP)
        python_batch(ld, WARMUP)
        rounds = max(1, -(-iterations // batch))
        for r in range(rounds):
            # alternate who goes first, so neither always runs on a warmer cache
            if r % 2 == 0:
                c_times += harness.batch(batch)
                py_times += python_batch(ld, batch)
            else:
                py_times += python_batch(ld, batch)
                c_times += harness.batch(batch)
    finally:
        harness.close()
    c_med = statistics.median(c_times)
    py_med = statistics.median(py_times)
    return {
        "n": len(c_times),
        "c_med": c_med,
        "py_med": py_med,
        "ratio": py_med / c_med,
        "c_p90": statistics.quantiles(c_times, n=10)[-1],
        "py_p90": statistics.quantiles(py_times, n=10)[-1],
        "plan_ms": plan_ms,
        "insns": len(skel.insns) // 8,
        "data": len(skel.data),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=400, help="timed loads per side (>= 200)")
    ap.add_argument("--batch", type=int, default=50, help="loads per interleaved batch")
    ap.add_argument("--only", help="one header file name")
    ap.add_argument("--profile", action="store_true", help="cProfile the Python side")
    args = ap.parse_args(argv)
    if args.iterations < MIN_ITERATIONS:
        ap.error(
            f"--iterations {args.iterations}: medians need at least {MIN_ITERATIONS} "
            "timed loads per side (the issue's floor)"
        )
    if args.batch < 1:
        ap.error("--batch must be at least 1")
    if os.geteuid() != 0:
        raise SystemExit("needs root (bpf() with CAP_BPF and CAP_SYS_ADMIN)")
    if shutil.which("gcc") is None or not Path("/usr/include/bpf/skel_internal.h").exists():
        raise SystemExit("needs gcc and libbpf-dev (bpf/skel_internal.h)")
    headers = [FIXTURES / h for h in HEADERS if args.only in (None, h)]
    if args.profile:
        import cProfile

        ld = _loader.Loader(_skeleton.load(headers[0]))
        cProfile.runctx("python_batch(ld, 500)", globals(), {"ld": ld}, sort="tottime")
        return 0
    gc.collect()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bpfsign-bench-") as tmp:
        for header in headers:
            rows.append((header.name, bench(header, args.iterations, args.batch, Path(tmp))))
    with open("/proc/sys/kernel/osrelease") as f:
        kernel = f.read().strip()
    print(
        f"light-skeleton load+close, kernel {kernel}, medians in µs over {rows[0][1]['n']} "
        f"interleaved iterations per side (batches of {args.batch})"
    )
    head = (
        f"{'header':<24} {'insns':>5} {'data':>6} {'C med':>8} {'Py med':>8} {'ratio':>6} "
        f"{'C p90':>8} {'Py p90':>8} {'Py plan ms':>10}"
    )
    print(head)
    print("-" * len(head))
    worst = 0.0
    for name, r in rows:
        worst = max(worst, r["ratio"])
        print(
            f"{name:<24} {r['insns']:>5} {r['data']:>6} {r['c_med']:>8.1f} {r['py_med']:>8.1f} "
            f"{r['ratio']:>6.3f} {r['c_p90']:>8.1f} {r['py_p90']:>8.1f} {r['plan_ms']:>10.2f}"
        )
    print(
        "C: libbpf 1.1 skel_internal.h (create, update, PROG_LOAD, TEST_RUN; no freeze); "
        "Python: create, update, freeze, PROG_LOAD, TEST_RUN. Both mmap the globals."
    )
    verdict = "meets" if worst <= TARGET else "misses"
    print(f"worst ratio {worst:.3f}: {verdict} the target of {TARGET}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
