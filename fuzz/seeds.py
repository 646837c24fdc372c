"""Write the starting corpus of each fuzz target into fuzz/corpus/<target>/ from the fixtures.

Run once (``python fuzz/seeds.py``); the fuzzers add what they find next to
these. Headers are shrunk (small insns/data blobs) so that a fuzz input stays
a few kilobytes.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from _harness import FIXTURES, REPO

CORPUS = REPO / "fuzz" / "corpus"
KEY = FIXTURES / "keys" / "TEST-ONLY-lskel-signing"


def _put(target: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / ("seed-" + hashlib.sha1(data).hexdigest()[:16])).write_bytes(data)


def _small_header(path: Path) -> bytes:
    from bpfsign.skel import skeleton

    skel = skeleton.load(path)
    assert skel.source is not None and skel.layout is not None
    text = skel.source
    edits = []
    for key, keep in (("insns", 8 * 6), ("data", 24)):
        span = skel.layout.blobs[key]
        value = getattr(skel, key)[:keep]
        edits.append((span.start, span.end, skeleton.render_literal(value)))
        num = skel.layout.numeric_sizes.get(key)
        if num is not None:
            edits.append((num.start, num.end, str(len(value))))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text.encode()


def main() -> None:
    from bpfsign.crypto import cms, keys
    from bpfsign.skel import skeleton

    cert_pem = (KEY.parent / (KEY.name + ".cert.pem")).read_bytes()
    cert_der = subprocess.run(
        ["openssl", "x509", "-outform", "DER"], input=cert_pem, capture_output=True, check=True
    ).stdout
    signer = keys.FileSigner.from_files(f"{KEY}.key.pem", f"{KEY}.cert.pem")
    sig = cms.sign(b"payload", signer)
    sig_ias = cms.sign(b"payload", signer, sid="issuer_serial")
    for data in (cert_der, sig, sig_ias):
        _put("fuzz_der", data)
    for data in (sig, sig_ias):
        _put("fuzz_cms", data)
    for target in ("fuzz_x509", "fuzz_signcert"):
        _put(target, cert_der)
        _put(target, cert_pem)
    for name in (
        "counter.lskel.h",
        "counter.signed.lskel.h",
        "counter.v71.lskel.h",
        "counter.v71.clang-format.lskel.h",
        "sockfilter.bpfeb.signed.lskel.h",
    ):
        _put("fuzz_skeleton", _small_header(FIXTURES / "skel" / name))
    for name in ("counter.lskel.h", "sockfilter.bpfeb.lskel.h"):
        skel = skeleton.load(FIXTURES / "skel" / name)
        _put("fuzz_insn", (b"B" if skel.endian == "big" else b"L") + skel.insns)
    _put("fuzz_convert", skeleton.load(FIXTURES / "skel" / "counter.signed.lskel.h").insns)


if __name__ == "__main__":
    main()
