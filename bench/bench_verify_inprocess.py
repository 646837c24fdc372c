"""In-process verify cost against the physical floor, and one verify process against openssl.

Floor (measured in the same run): hashlib SHA-256 of the payload plus one raw
RSA-2048 PKCS#1 v1.5 verify with pyca (key object built once).  Target for
64 KiB and 4 MiB: bpfsign.crypto.verify.verify <= 1.3x the floor.

Then, as whole processes: a minimal "verify one file" Python process using
bpfsign (the venv's interpreter) against `openssl cms -verify` on the same files,
with reference floors (bare interpreter; typing + hashlib; pyca's RSA
modules, which the verify path avoids when it checks signatures through the
system libcrypto, see bpfsign.crypto._libcrypto).

    python bench/bench_verify_inprocess.py
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bpfsign.crypto import cms
from bpfsign.crypto.trust import TrustStore
from bpfsign.crypto.verify import verify
from bpfsign.crypto.x509 import Certificate

PYCA_FLOOR = (
    "from cryptography.exceptions import InvalidSignature\n"
    "from cryptography.hazmat.primitives import hashes\n"
    "from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils\n"
)
#: The package __init__ imports typing (~6-9 ms with what it pulls in); this shows
#: the verify path without it (the library modules themselves never import typing).
BYPASS_INIT = (
    "import sys, types, importlib.util\n"
    "_spec = importlib.util.find_spec('bpfsign')\n"
    "_m = types.ModuleType('bpfsign'); _m.__path__ = list(_spec.submodule_search_locations)\n"
    "sys.modules['bpfsign'] = _m\n"
)
SIZES = {"16 B": 16, "64 KiB": 64 * 1024, "4 MiB": 4 * 1024 * 1024}


def paired_medians(
    a: Callable[[], object], b: Callable[[], object], *, budget: float
) -> tuple[float, float]:
    """Median seconds of ``a`` and ``b``, timed alternately so load drift hits both alike."""
    a(), b()
    times_a: list[float] = []
    times_b: list[float] = []
    clock = time.perf_counter
    start = clock()
    while len(times_a) < 15 or (clock() - start < budget and len(times_a) < 20000):
        t0 = clock()
        a()
        t1 = clock()
        b()
        t2 = clock()
        times_a.append(t1 - t0)
        times_b.append(t2 - t1)
    return statistics.median(times_a), statistics.median(times_b)


class _Signer:
    def __init__(self, key_pem: bytes, cert_der: bytes) -> None:
        self._key = load_pem_private_key(key_pem, None)
        self.certificate = cert_der
        self.key_type = "rsa"

    def sign_digest(self, digest: bytes, hash_name: str) -> bytes:
        return self._key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))  # type: ignore[union-attr,call-arg,arg-type]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bpfsign-bench-"))
    subprocess.run(
        ["openssl", "req", "-new", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
         "-subj", "/CN=bench", "-addext", "subjectKeyIdentifier=hash",
         "-keyout", work / "key.pem", "-out", work / "cert.pem"],
        check=True, capture_output=True,
    )  # fmt: skip
    cert_der = subprocess.run(
        ["openssl", "x509", "-in", work / "cert.pem", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    (work / "cert.der").write_bytes(cert_der)
    signer = _Signer((work / "key.pem").read_bytes(), cert_der)
    store = TrustStore()
    store.add(cert_der)
    pub = Certificate.from_der(cert_der).public_key()
    pkcs1, prehashed = padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())

    print(f"{'payload':>8} | {'floor (sha256 + RSA verify)':>28} | {'bpfsign verify':>15} | ratio")
    print("-" * 70)
    for label, size in SIZES.items():
        payload = os.urandom(size)
        sig = cms.sign(payload, signer)
        raw = cms.parse_signed_data(sig).signer_infos[0].signature

        def floor(payload: bytes = payload, raw: bytes = raw) -> None:
            pub.verify(raw, hashlib.sha256(payload).digest(), pkcs1, prehashed)

        def ours(payload: bytes = payload, sig: bytes = sig) -> None:
            verify(payload, sig, store)

        base, mine = paired_medians(floor, ours, budget=3.0 if size > 1 << 20 else 1.5)
        print(f"{label:>8} | {base * 1e6:>25.1f} µs | {mine * 1e6:>12.1f} µs | {mine / base:.2f}x")
        if label == "64 KiB":
            (work / "msg.bin").write_bytes(payload)
            (work / "sig.der").write_bytes(sig)

    # whole processes: one verify, the venv interpreter vs openssl
    script = (
        "import sys\n"
        "from bpfsign.crypto.trust import TrustStore\n"
        "from bpfsign.crypto.verify import verify\n"
        "t = TrustStore(); t.add_path(sys.argv[1])\n"
        "verify(open(sys.argv[2], 'rb').read(), open(sys.argv[3], 'rb').read(), t)\n"
    )
    commands = {
        "openssl cms -verify": ["openssl", "cms", "-verify", "-binary", "-inform", "DER",
                                "-in", str(work / "sig.der"), "-content", str(work / "msg.bin"),
                                "-certfile", str(work / "cert.pem"), "-nointern", "-noverify",
                                "-out", "/dev/null"],
        "python: bpfsign verify": [sys.executable, "-c", script, str(work / "cert.der"),
                                   str(work / "msg.bin"), str(work / "sig.der")],
        "python: same, bpfsign/__init__ bypassed": [sys.executable, "-c", BYPASS_INIT + script,
                                                     str(work / "cert.der"), str(work / "msg.bin"),
                                                     str(work / "sig.der")],
        "python: pyca rsa/padding/hashes only": [sys.executable, "-c", PYCA_FLOOR],
        "python: import typing, hashlib only": [sys.executable, "-c", "import typing, hashlib"],
        "python: interpreter only": [sys.executable, "-c", "pass"],
    }  # fmt: skip
    # Byte-compiled modules, as in any real install (this environment may set
    # PYTHONDONTWRITEBYTECODE, which makes every start-up recompile the sources).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    results = {}
    for name, cmd in commands.items():
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        times = []
        for _ in range(30):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            times.append(time.perf_counter() - t0)
        results[name] = statistics.median(times)
    print()
    print(f"{'process (64 KiB payload)':>38} | median   | vs openssl")
    print("-" * 64)
    for name, value in results.items():
        print(f"{name:>38} | {value * 1e3:5.1f} ms | {value / results['openssl cms -verify']:.2f}x")


if __name__ == "__main__":
    main()
