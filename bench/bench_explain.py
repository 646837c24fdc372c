"""`bpfsign explain` against `bpfsign verify`, and `bpfsign verify` against `openssl cms -verify`.

Run: .venv/bin/python bench/bench_explain.py [--runs N]

Both ratios of issue 12, each for a detached 64 KiB blob and for a converted,
signed light skeleton (counter): one ``bpfsign verify`` process vs one
``openssl cms -verify`` process on the blob (the rules engine now sits on
verify's path: target <= 1.3x, as bench_verify_cli.py), and one ``bpfsign
explain`` process vs one ``bpfsign verify`` process on the same file (explain
prints every check; it may cost more, it is not a hot path). Round-robin
timing, medians; the helpers are bench_verify_cli.py's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_verify_cli import (
    ONE_FILE_TARGET,
    REPO,
    SCRIPT,
    bench_env,
    openssl_verify,
    round_robin,
    setup,
)

FIXTURES = REPO / "tests" / "fixtures"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="rounds (>= 30)")
    args = parser.parse_args()
    if args.runs < 30:
        parser.error("--runs must be at least 30 for stable medians")
    with tempfile.TemporaryDirectory(prefix="bpfsign-bench-") as tmp:
        work = Path(tmp)
        cert, files = setup(work)
        blob = files[0]
        skel = work / "counter.lskel.h"
        shutil.copy(FIXTURES / "skel" / "counter.signed.lskel.h", skel)
        fixture_cert = FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"
        subprocess.run([str(SCRIPT), "sign", "--key", str(FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem"),
                        "--cert", str(fixture_cert), str(skel)], check=True, capture_output=True)  # fmt: skip
        env = bench_env(work / "pycache", None)
        commands = {
            "openssl cms -verify, blob": openssl_verify(cert, blob),
            "bpfsign verify, blob": [str(SCRIPT), "verify", "--trust", str(cert), str(blob)],
            "bpfsign explain, blob": [str(SCRIPT), "explain", "--trust", str(cert), str(blob)],
            "bpfsign verify, skeleton": [str(SCRIPT), "verify", "--trust", str(fixture_cert), str(skel)],
            "bpfsign explain, skeleton": [str(SCRIPT), "explain", "--trust", str(fixture_cert), str(skel)],
        }  # fmt: skip
        times = round_robin(commands, args.runs, env)
        med = {name: statistics.median(t) for name, t in times.items()}
        print(
            f"{args.runs} round-robin rounds, medians (64 KiB blob, RSA-3072; counter skeleton, RSA-2048)"
        )
        for name in commands:
            print(f"  {name:<28} {med[name]:>7.1f} ms  (min {min(times[name]):.1f})")
        ossl = med["openssl cms -verify, blob"]
        verify_ratio = med["bpfsign verify, blob"] / ossl
        print(f"bpfsign verify / openssl cms -verify (blob): {verify_ratio:.2f}x; target <= "
              f"{ONE_FILE_TARGET}x: {'PASS' if verify_ratio <= ONE_FILE_TARGET else 'FAIL'}")  # fmt: skip
        for kind in ("blob", "skeleton"):
            ratio = med[f"bpfsign explain, {kind}"] / med[f"bpfsign verify, {kind}"]
            print(f"bpfsign explain / bpfsign verify ({kind}): {ratio:.2f}x")
        return 0 if verify_ratio <= ONE_FILE_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
