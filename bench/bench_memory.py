"""Peak memory and time of bpfsign on huge inputs, against the input size and sha256sum.

Run: .venv/bin/python bench/bench_memory.py [--keep DIR]

Inputs (generated into a temp dir, never committed):
  * a 100 MB header: a 16 MiB data blob at the kernel's limit plus a big comment
    (signed, then inspected and verified);
  * the 16 MiB-blob header (every data byte ``\\0``: the most escapes per byte);
  * a 1 MB signature file (``verify --sig``: refused as the kernel refuses it).

Each bpfsign run is a fresh process; its peak RSS comes from
``getrusage(RUSAGE_CHILDREN)`` in a wrapper process, so nothing else counts.
``sha256sum`` of the same file runs in the same way in the same run, as the
floor any tool that reads the file pays. Target (issue 11): peak RSS <= 3x the
input + 50 MB, and time linear in the input.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests._bigheader import FIXTURE, MAX_PAYLOAD, write_big_header  # noqa: E402

PYTHON = str(REPO / ".venv" / "bin" / "python")
KEYS = REPO / "tests" / "fixtures" / "keys"
KEY = KEYS / "TEST-ONLY-lskel-signing.key.pem"
CERT = KEYS / "TEST-ONLY-lskel-signing.cert.pem"
MB = 1 << 20

_WRAPPER = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True)\n"
    "t = time.perf_counter() - t\n"
    "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
    "print(json.dumps({'rc': p.returncode, 'rss': rss, 'secs': t,"
    " 'err': p.stderr.decode(errors='replace')[-300:]}))\n"
)


def measure(argv: list[str]) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *argv], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def bpfsign(*args: str) -> list[str]:
    return [PYTHON, "-m", "bpfsign", *args]


def insns_size() -> int:
    sys.path.insert(0, str(REPO / "src"))
    from bpfsign.skel import skeleton

    return len(skeleton.load(FIXTURE).insns)


def make_100mb(path: Path, data_size: int) -> None:
    """The 16 MiB-limit blob (random bytes, ``\\xNN``) and a comment up to 100 MB."""
    write_big_header(path, data_size, "random")
    pad = 100_000_000 - path.stat().st_size
    with open(path, "a", encoding="ascii") as fh:
        line = "/* " + "x" * 76 + " */\n"
        fh.write(line * (pad // len(line)))


def report(label: str, path: Path, argv: list[str], expect_rc: int = 0) -> None:
    floor = measure(["sha256sum", str(path)])
    r = measure(argv)
    size = path.stat().st_size
    rss, secs = r["rss"], r["secs"]
    assert isinstance(rss, int) and isinstance(secs, float)
    assert isinstance(floor["rss"], int) and isinstance(floor["secs"], float)
    ok = rss <= 3 * size + 50 * MB
    print(
        f"{label:<44} {size / MB:7.1f} MB  rss {rss / MB:7.1f} MB = {rss / size:5.2f}x input"
        f" ({rss / floor['rss']:6.1f}x sha256sum's {floor['rss'] / MB:.1f} MB)"
        f"  time {secs:6.2f} s = {secs / floor['secs']:5.1f}x sha256sum's {floor['secs']:.2f} s"
        f"  {'PASS' if ok else 'FAIL'} (<= 3x + 50 MB)"
        + ("" if r["rc"] == expect_rc else f"  UNEXPECTED exit {r['rc']}: {r['err']}")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="generate the inputs into DIR and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bpfsign-mem-") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        data_size = (MAX_PAYLOAD - insns_size()) // 8 * 8
        big = work / "big100.lskel.h"
        make_100mb(big, data_size)
        blob = work / "blob16.lskel.h"
        write_big_header(blob, data_size, "zeros")
        payload = work / "payload.bin"
        payload.write_bytes(b"payload")
        sig = work / "payload.bin.p7s"
        sig.write_bytes(b"\x30\x83\x0f\xff\xfc" + os.urandom(MB - 5))

        sign = ["sign", "--key", str(KEY), "--cert", str(CERT)]
        report("sign, 100 MB header", big, bpfsign(*sign, "-o", str(work / "o1.lskel.h"), str(big)))
        report("inspect, 100 MB header", big, bpfsign("inspect", str(big)))
        report(
            "verify, 100 MB header (signed)",
            work / "o1.lskel.h",
            bpfsign("verify", "--trust", str(CERT), str(work / "o1.lskel.h")),
        )
        report(
            "sign, 16 MiB-blob header (\\0)",
            blob,
            bpfsign(*sign, "-o", str(work / "o2.lskel.h"), str(blob)),
        )
        report(
            "verify, 16 MiB-blob header (signed)",
            work / "o2.lskel.h",
            bpfsign("verify", "--trust", str(CERT), str(work / "o2.lskel.h")),
        )
        report(
            "verify --sig, 1 MB signature file",
            sig,
            bpfsign("verify", "--trust", str(CERT), "--sig", str(sig), str(payload)),
            expect_rc=1,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
