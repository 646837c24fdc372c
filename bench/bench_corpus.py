"""The real-world corpus: bpfsign load+close against libbpf's skel_internal.h, and
parse+sign of the largest header against ``bpftool gen skeleton -S``.

Run (root, on a kernel with a usable bpf(); the sign part needs the corpus cache made
by ``bash tests/corpus/generate.sh``, for the linked object and the 7.3.4 bpftool):

    .venv/bin/python bench/bench_corpus.py [--pairs 600] [--sign-runs 15] [--only NAME]
    .venv/bin/python bench/bench_corpus.py --sign-only [--sign-runs 15]   # no root needed

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
``gen skeleton -S`` of the same linked object and key (open, generate the loader, sign,
print), with ``python -c "import bpfsign"`` and an in-process load+sign+save (key loaded
once) in the same rounds. It needs the linked object and the 7.3.4 bpftool from the
corpus cache; without them it says what is missing and how to make it
(``bash tests/corpus/generate.sh --object PROG``).
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


def _time(cmd: list[str], out: Path | None, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd`` once: (wall ms, CPU ms of the process, user + system)."""
    t = time.perf_counter()
    with open(os.devnull if out is None else out, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def _in_process(header: Path, signer: bpfsign.Signer, out: Path) -> tuple[float, float, float]:
    """Parse, sign and save ``header`` once in this process: (parse, sign, save) in ms."""
    from bpfsign import scheme, skeleton

    clock = time.perf_counter
    t0 = clock()
    skel = skeleton.load(header)
    t1 = clock()
    signed, _ = scheme.sign(skel, signer)
    t2 = clock()
    signed.save(out)
    t3 = clock()
    return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000


def _missing_sign_inputs(cache: Path, obj: Path, bpftool: Path, libc: Path) -> str | None:
    """What the sign benchmark lacks in the corpus cache, said plainly (or None)."""
    if not cache.is_dir():
        return f"the corpus cache {cache} does not exist"
    missing = [
        f"{what} ({p})"
        for what, p in (
            ("the linked object bpftool generates the header from", obj),
            ("the 7.3.4 bpftool", bpftool),
            ("sid's glibc, which that bpftool needs", libc / "ld-linux-x86-64.so.2"),
        )
        if not p.exists()
    ]
    return "the corpus cache lacks " + "; ".join(missing) if missing else None


def bench_sign(runs: int) -> bool:
    """``bpfsign sign`` of the largest corpus header against ``bpftool gen skeleton -S``.

    Returns False (after saying why) when the corpus cache lacks what it needs.
    """
    cache = Path(os.environ.get("BPFSIGN_CORPUS_CACHE", CORPUS / ".cache"))
    fcache = Path(os.environ.get("BPFSIGN_FIXTURE_CACHE", REPO / "tests" / "fixtures" / ".cache"))
    largest = max(
        (h for h in refload.headers() if ".v73.signed." in h.name), key=lambda p: p.stat().st_size
    )
    prog = largest.name.split(".", 1)[0]
    obj = cache / "build" / "obj" / f"{prog}.llinked3.o"
    libc = fcache / "root" / "libc6" / "usr" / "lib" / "x86_64-linux-gnu"
    tool = cache / "root" / "bpftool" / "usr" / "sbin" / "bpftool"
    why = _missing_sign_inputs(cache, obj, tool, libc)
    if why is not None:
        print(
            f"\nsign benchmark NOT RUN: {why}.\n"
            f"  Make what it needs (about 16 MB from the Debian mirror, then one clang build):\n"
            f"    BPFSIGN_CORPUS_CACHE={cache} BPFSIGN_FIXTURE_CACHE={fcache} "
            f"bash tests/corpus/generate.sh --object {prog}"
        )
        return False
    bpftool = [
        str(libc / "ld-linux-x86-64.so.2"),
        "--library-path",
        f"{libc}:/lib/x86_64-linux-gnu",
        str(tool),
    ]
    keys = REPO / "tests" / "fixtures" / "keys"
    key, cert = keys / "TEST-ONLY-lskel-signing.key.pem", keys / "TEST-ONLY-lskel-signing.cert.pem"
    # Both sides as installed: Python reads its modules' cached bytecode (a pip install
    # compiles it; PYTHONDONTWRITEBYTECODE, set in some shells, would recompile every run).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(REPO / "src")
    signer = bpfsign.FileSigner.from_files(key, cert)
    with tempfile.TemporaryDirectory(prefix="bpfsign-bench-") as tmp:
        out, out_ip = Path(tmp) / "out.lskel.h", Path(tmp) / "inproc.lskel.h"
        ref = Path(tmp) / "bpftool.lskel.h"
        gen = [*bpftool, "gen", "skeleton", "-S", "-k", str(key), "-i", str(cert), str(obj)]
        gen += ["name", f"{prog}_lskel"]
        # the console script, as users run it (``python -m`` adds runpy's imports)
        script = Path(sys.executable).with_name("bpfsign")
        entry = [str(script)] if script.exists() else [sys.executable, "-m", "bpfsign"]
        ours = [*entry, "sign", "--key", str(key), "--cert", str(cert), "-o", str(out)]
        ours.append(str(largest))
        start = [sys.executable, "-c", "import bpfsign"]
        bt, st, pt, ip = [], [], [], []
        for i in range(runs + 2):
            b = _time(gen, ref, env)
            s = _time(ours, None, env)
            p = _time(start, None, env)
            parse_sign_save = _in_process(largest, signer, out_ip)
            if i >= 2:  # warm-up (and the bytecode cache written)
                bt.append(b)
                st.append(s)
                pt.append(p)
                ip.append(parse_sign_save)
        same = out.read_bytes() == largest.read_bytes() == ref.read_bytes()
        same_ip = out_ip.read_bytes() == largest.read_bytes()

    def med(xs: list[tuple[float, float]], k: int) -> float:
        return statistics.median(x[k] for x in xs)

    bm, sm, pm = med(bt, 0), med(st, 0), med(pt, 0)
    bc, sc, pc = med(bt, 1), med(st, 1), med(pt, 1)
    parse, sign, save = (statistics.median(x[k] for x in ip) for k in range(3))
    whole_ip = statistics.median(sum(x) for x in ip)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(
        f"\nparse+sign of the largest header, {largest.name} ({largest.stat().st_size} bytes), "
        f"medians of {runs} interleaved runs (load average {load}, {os.cpu_count()} CPUs);"
        "\nwall ms, and CPU ms (user + system) of the process, which the machine's load "
        "disturbs less:"
    )
    print(f"  bpftool 7.3.4 gen skeleton -S (from {obj.name}): {bm:7.1f} wall {bc:7.1f} CPU")
    print(
        f"  bpfsign sign -o, whole process:                 {sm:7.1f} wall {sc:7.1f} CPU   "
        f"ratio {sm / bm:.2f}x wall, {sc / bc:.2f}x CPU"
    )
    print(
        f"    of which Python start-up + import bpfsign:    {pm:7.1f} wall {pc:7.1f} CPU   "
        f"(without it: ratio {(sm - pm) / bm:.2f}x wall, {(sc - pc) / bc:.2f}x CPU)"
    )
    print(
        f"  in-process load+sign+save (key loaded once):    {whole_ip:7.1f} wall"
        f"{'':13}ratio {whole_ip / bm:.2f}x wall  (parse {parse:.1f}, sign {sign:.1f}, "
        f"save {save:.1f})"
    )
    print(f"  outputs byte-identical (bpfsign, bpftool, committed header): {same and same_ip}")
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=600, help="timed C+bpfsign load pairs per header")
    ap.add_argument("--sign-runs", type=int, default=15)
    ap.add_argument("--only", help="substring of the header names to time")
    ap.add_argument("--no-sign", action="store_true")
    ap.add_argument("--sign-only", action="store_true", help="only the sign benchmark (no root)")
    ap.add_argument(
        "--trust-test-cert",
        action="store_true",
        help="add the TEST-ONLY cert to a fresh session keyring first (signed loads)",
    )
    args = ap.parse_args(argv)
    if args.pairs < 4:
        ap.error("--pairs must be at least 4 (quartiles)")
    if args.sign_only:
        return 0 if bench_sign(args.sign_runs) else 1
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
