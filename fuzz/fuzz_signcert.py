"""Fuzz the signing path's certificate loading: the --cert file as `bpfsign sign` reads it.

keys.load_certificate (pyca) then the SignedData builder's own parse of the same DER.
"""

from __future__ import annotations

import os
import tempfile

from _harness import checked, run

_DIR = tempfile.mkdtemp(prefix="fuzz-signcert-")


def _load(data: bytes) -> None:
    from bpfsign.crypto import cms, keys

    path = os.path.join(_DIR, "cert")
    with open(path, "wb") as fh:
        fh.write(data)
    cert_der = keys.load_certificate(path)
    for sid in ("skid", "issuer_serial"):
        cms.build_signed_data(cert_der, b"\x01" * 256, sid=sid)  # type: ignore[arg-type]


one_input = checked(_load)

if __name__ == "__main__":
    run("fuzz_signcert")
