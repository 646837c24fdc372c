"""PKCS#11 signing latency against the file-key path, same key material, same run.

One RSA-2048 and one ECDSA P-256 key are made as files, imported into a fresh
SoftHSM2 token (in a temporary directory), and the same light skeleton is signed
both ways:

* in process: ``scheme.sign_skeleton`` with a ``FileSigner`` vs a ``Pkcs11Signer``
  (session opened once, as ``bpfsign sign`` does for many files), median of N;
* per signature only: ``sign_digest`` of a SHA-256 digest, both signers;
* whole processes: ``bpfsign sign --key FILE`` vs ``bpfsign sign --key pkcs11:...``
  (module load, token lookup, login, key lookup included).

The ratio is PKCS#11 / file. RSA signatures are also checked byte-identical.

    python bench/bench_pkcs11.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _softhsm import softhsm_missing, softhsm_token  # noqa: E402
from bpfsign.crypto import keys, pkcs11  # noqa: E402
from bpfsign.skel import scheme, skeleton  # noqa: E402

SKEL = ROOT / "tests" / "fixtures" / "skel" / "counter.v71.lskel.h"


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def process_ms(argv: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200, help="in-process rounds (default 200)")
    ap.add_argument("--process-rounds", type=int, default=15, help="CLI rounds (default 15)")
    args = ap.parse_args()
    missing = softhsm_missing()
    if missing is not None:
        print(f"bench_pkcs11: {missing}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bpfsign-bench-pkcs11-"))
    try:
        token = softhsm_token(work, "bench")
        skel = skeleton.load(SKEL)
        digest = hashlib.sha256(b"bench").digest()
        print(f"{'':24} {'file ms':>9} {'pkcs11 ms':>10} {'ratio':>7}")
        for name, pair in (
            ("rsa-2048", keys.generate("rsa", bits=2048, subject="bench rsa")),
            ("ec-p256", keys.generate("ec", curve="P-256", subject="bench p256")),
        ):
            key, cert = work / f"{name}.key", work / f"{name}.crt"
            keys.write_key(key, pair.key)
            keys.write_cert(cert, pair.cert_der)
            token.import_key(key, name, "01" if name.startswith("rsa") else "02")
            uri = token.uri(name)
            file_signer = keys.FileSigner(pair.key, pair.cert_der)
            with pkcs11.Pkcs11Signer.open(uri, cert=str(cert)) as hsm:
                if name.startswith("rsa"):
                    a = scheme.sign_skeleton(skel, file_signer)[0]
                    b = scheme.sign_skeleton(skel, hsm)[0]
                    assert a == b, "RSA output must be byte-identical"
                for what, f_file, f_hsm in (
                    ("sign_skeleton", lambda s=file_signer: scheme.sign_skeleton(skel, s),
                     lambda s=hsm: scheme.sign_skeleton(skel, s)),
                    ("sign_digest", lambda s=file_signer: s.sign_digest(digest, "sha256"),
                     lambda s=hsm: s.sign_digest(digest, "sha256")),
                ):  # fmt: skip
                    t_file = median_ms(f_file, args.rounds)
                    t_hsm = median_ms(f_hsm, args.rounds)
                    print(
                        f"{name + ' ' + what:24} {t_file:9.3f} {t_hsm:10.3f} {t_hsm / t_file:6.2f}x"
                    )
            out = work / "out.lskel.h"
            shutil.copy(SKEL, out)
            exe = [sys.executable, "-m", "bpfsign", "sign", "-o", str(out)]
            t_file = process_ms([*exe, "--key", str(key), "--cert", str(cert), str(SKEL)],
                                args.process_rounds)  # fmt: skip
            t_hsm = process_ms([*exe, "--key", uri, "--cert", str(cert), str(SKEL)],
                               args.process_rounds)  # fmt: skip
            print(f"{name + ' CLI process':24} {t_file:9.1f} {t_hsm:10.1f} {t_hsm / t_file:6.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
