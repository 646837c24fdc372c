"""What kernel signature verification costs a light-skeleton load, on Linux 7.x.

Run on the host: ``.venv/bin/python bench/bench_vm_sign.py [--iterations N] [--boots B]``
(default 100 iterations, 1 boot; medians move by up to 15 % between boots).
It boots the 7.x guest (tools.vm) and, inside it, loads+runs+closes each
fixture skeleton through bpfsign's loader, signed (loadtime, keyring -3)
against unsigned, interleaved, N times each. The guest runs under TCG, where
absolute times are 40-90x the host's, so only ratios are reported (docs/vm.md §8).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
FIXTURES = ("sockfilter.lskel.h", "counter.lskel.h", "multi.lskel.h")


def _guest(iterations: int) -> int:
    """Inside the guest: the measurement itself."""
    from bpfsign.crypto import keys
    from bpfsign.kernel import loader
    from bpfsign.kernel.backend import default_backend
    from bpfsign.skel import scheme, skeleton

    backend = default_backend()
    backend.join_session_keyring()
    key_dir = CHECKOUT / "tests" / "fixtures" / "keys"
    signer = keys.FileSigner.from_files(
        key_dir / "TEST-ONLY-lskel-signing.key.pem", key_dir / "TEST-ONLY-lskel-signing.cert.pem"
    )
    backend.add_key("asymmetric", "bpfsign-bench", signer.certificate, -3)
    rows = []
    for name in FIXTURES:
        path = CHECKOUT / "tests" / "fixtures" / "skel" / name
        unsigned = skeleton.load(path)
        text, _ = scheme.sign_skeleton(unsigned, signer, scheme="loadtime")
        signed = skeleton.parse(text, path=str(path))
        variants = {
            "unsigned": loader.Loader(unsigned, keyring_id=-3),
            "signed": loader.Loader(signed, keyring_id=-3),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for i in range(iterations + 3):  # 3 warm-up rounds, dropped
            order = list(variants) if i % 2 == 0 else list(reversed(variants))
            for variant in order:
                t0 = time.perf_counter()
                variants[variant].load().close()
                dt = time.perf_counter() - t0
                if i >= 3:
                    times[variant].append(dt)
        med_u, med_s = statistics.median(times["unsigned"]), statistics.median(times["signed"])
        q_u = statistics.quantiles(times["unsigned"], n=4)
        q_s = statistics.quantiles(times["signed"], n=4)
        rows.append((name, iterations, med_s / med_u, q_s[0] / q_u[0], q_s[2] / q_u[2],
                     len(unsigned.insns) + len(unsigned.data)))  # fmt: skip
    print(f"BENCH kernel {os.uname().release}, {iterations} interleaved load+run+close per variant")
    print(f"BENCH {'fixture':<20} {'n':>4} {'signed/unsigned median':>24} {'p25 ratio':>10} "
          f"{'p75 ratio':>10} {'signed bytes':>13}")  # fmt: skip
    for name, n, med, p25, p75, size in rows:
        print(f"BENCH {name:<20} {n:>4} {med:>24.3f} {p25:>10.3f} {p75:>10.3f} {size:>13}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--iterations", type=int, default=100, help="loads per variant (at least 50)"
    )
    parser.add_argument("--boots", type=int, default=1, help="repeat in this many guest boots")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.iterations < 50:
        parser.error("--iterations must be at least 50 (TCG timings are noisy)")
    if args.guest:
        return _guest(args.iterations)

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_guest.py
    from _guest import run_in_guest

    return run_in_guest(__file__, ["--iterations", str(args.iterations)], boots=args.boots)


if __name__ == "__main__":
    sys.exit(main())
