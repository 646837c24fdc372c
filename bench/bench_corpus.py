"""The real-world corpus: bpfsign load+close against libbpf's skel_internal.h, and
parse+sign of the largest header against ``bpftool gen skeleton -S``.

Run (root, on a kernel with a usable bpf(); the sign part needs the corpus cache made
by ``bash tests/corpus/generate.sh``, for the linked object and the 7.3.4 bpftool):

    .venv/bin/python bench/bench_corpus.py [--pairs 600] [--sign-runs 15] [--only NAME]

Load+close: for every corpus header both loaders can load on this kernel, the C
reference (tests/corpus/refload.c built against the skel_internal.h matching its
bpftool, as a shared library whose ``ref_bench`` runs the header's own
``__open_and_load`` + ``__destroy``) and bpfsign (``Loader.load()`` +
``LoadedSkeleton.close()``; the parse and plan are done once, outside the timing, as
the C compiler does them once) alternate load by load in this process (bench/_abba.py:
why in-process, why two clocks). Reported per header: medians of each side, the ratio
of the medians, and the quartiles of the per-pair ratios. Target: ratio <= 1.05x per
header (issue 9), on both clocks; the CPU clock is the one a shared machine cannot blur.

Sign: whole processes, interleaved, medians: ``python -m bpfsign sign -o OUT`` of the
largest header (parse, sign, render, write) against the 7.3.4 bpftool's
``gen skeleton -S`` of the same linked object (open, generate the loader, sign, print).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "corpus"
sys.path.insert(0, str(CORPUS))
sys.path.insert(0, str(REPO / "src"))

import checks  # noqa: E402
import refload  # noqa: E402

import _abba  # noqa: E402
import bpfsign  # noqa: E402


def bench_load(h: Path, pairs: int) -> _abba.Result | str:
    c = refload.run(h)
    if not c["ok"]:
        return f"C fails ({c['step']}, errno {c['errno']})"
    try:
        first = bpfsign.load_skeleton(h)
    except (bpfsign.Error, OSError) as exc:
        return f"bpfsign fails ({type(exc).__name__}: {str(exc).splitlines()[0][:60]})"
    skel = first.skeleton
    first.close()
    ref = _abba.c_function(refload.binary(h, shared=True), "ref_bench")
    return _abba.measure(ref, bpfsign.Loader(skel).load, pairs, what=h.name)


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
    ap.add_argument("--pairs", type=int, default=600, help="timed C+bpfsign load pairs per header")
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
    width = 40
    print("corpus " + _abba.header(width, args.pairs, "skel_internal.h, tests/corpus/refload.c"))
    results: list[_abba.Result] = []
    skipped = []
    for h in refload.headers():
        if args.only and args.only not in h.name:
            continue
        r = bench_load(h, args.pairs)
        if isinstance(r, str):
            skipped.append((h.name, r))
            continue
        results.append(r)
        print(_abba.row(h.name, width, r), flush=True)
    for line in _abba.summary(results):
        print(line)
    for name, why in skipped:
        print(f"not timed: {name}: {why}")
    if not args.no_sign:
        bench_sign(args.sign_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
