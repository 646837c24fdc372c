"""Light-skeleton load+close latency: bpfsign's Python loader against C.

Run (root, on a kernel with a usable bpf()):
    .venv/bin/python bench/bench_load.py [--pairs 600] [--only NAME] [--profile]

For every unsigned fixture header, a C harness that includes the header and calls
``<name>__open_and_load()`` + ``<name>__destroy()`` is built here with gcc and Debian
12's libbpf 1.1 ``bpf/skel_internal.h``, as a shared library, and called in this
process: C and bpfsign (``Loader.load()`` + ``LoadedSkeleton.close()``) alternate load
by load, on two clocks (bench/_abba.py says why). The one-time parse and plan (the C
compiler's job on the C side) is reported separately.

Target (issue 4): bpfsign median <= 1.05x the C median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIN_ITERATIONS = 200  # issue 4: medians over at least 200 iterations
sys.path.insert(0, str(REPO / "src"))

import _abba  # noqa: E402
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

HARNESS = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <linux/types.h>
%(types)s#include "%(header)s"

static long long clock_ns(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* n cycles; out[2i] wall ns, out[2i+1] this thread's CPU ns (bench/_abba.py) */
int bench(long n, long long *out)
{
	for (long i = 0; i < n; i++) {
		long long t = clock_ns(CLOCK_MONOTONIC), c = clock_ns(CLOCK_THREAD_CPUTIME_ID);
		struct %(name)s *skel = %(name)s__open_and_load();
		if (!skel)
			return errno ? errno : EINVAL;
		%(name)s__destroy(skel);
		out[2 * i + 1] = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c;
		out[2 * i] = clock_ns(CLOCK_MONOTONIC) - t;
	}
	return 0;
}
"""


def build(header: Path, name: str, workdir: Path) -> Path:
    """The C harness for ``header``, as a shared library."""
    src = workdir / f"{header.stem}.c"
    lib = workdir / (header.stem.replace(".", "_") + ".so")
    # struct-typed globals need their types first (multi.h next to multi.bpf.c)
    types_h = REPO / "tests" / "fixtures" / "bpf" / f"{name}.h"
    types = f'#include "{types_h}"\n' if types_h.exists() else ""
    src.write_text(HARNESS % {"header": header, "name": name, "types": types})
    subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(lib), str(src), "-I", str(header.parent)],
        check=True,
        capture_output=True,
        text=True,
    )
    return lib


def bench(header: Path, pairs: int, workdir: Path) -> tuple[_abba.Result, float]:
    """The A/B result, and the one-time parse + plan in ms."""
    t0 = time.perf_counter()
    skel = _skeleton.load(header)
    ld = _loader.Loader(skel)
    plan_ms = (time.perf_counter() - t0) * 1000
    c_fn = _abba.c_function(build(header, skel.name, workdir), "bench")
    return _abba.measure(c_fn, ld.load, pairs, what=header.name), plan_ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=600, help="C+bpfsign load pairs (>= 200)")
    ap.add_argument("--only", help="one header file name")
    ap.add_argument("--profile", action="store_true", help="cProfile the Python side")
    args = ap.parse_args(argv)
    if args.pairs < MIN_ITERATIONS:
        ap.error(
            f"--pairs {args.pairs}: medians need at least {MIN_ITERATIONS} "
            "timed loads per side (the issue's floor)"
        )
    if os.geteuid() != 0:
        raise SystemExit("needs root (bpf() with CAP_BPF and CAP_SYS_ADMIN)")
    if shutil.which("gcc") is None or not Path("/usr/include/bpf/skel_internal.h").exists():
        raise SystemExit("needs gcc and libbpf-dev (bpf/skel_internal.h)")
    headers = [FIXTURES / h for h in HEADERS if args.only in (None, h)]
    if args.profile:
        import cProfile

        ld = _loader.Loader(_skeleton.load(headers[0]))
        cProfile.runctx(
            "for _ in range(500): ld.load().close()", globals(), {"ld": ld}, sort="tottime"
        )
        return 0
    width = 24
    print("fixture " + _abba.header(width, args.pairs, "libbpf 1.1 skel_internal.h"))
    results = []
    plans = []
    with tempfile.TemporaryDirectory(prefix="bpfsign-bench-") as tmp:
        for h in headers:
            r, plan_ms = bench(h, args.pairs, Path(tmp))
            results.append(r)
            plans.append(f"{h.name} {plan_ms:.2f}")
            print(_abba.row(h.name, width, r), flush=True)
    for line in _abba.summary(results):
        print(line)
    print("one-time parse + plan (ms): " + ", ".join(plans))
    print(
        "C: libbpf 1.1 skel_internal.h (create, update, PROG_LOAD, TEST_RUN; no freeze); "
        "bpfsign: create, update, freeze, PROG_LOAD, TEST_RUN. Both mmap the globals."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
