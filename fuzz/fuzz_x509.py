"""Fuzz the X.509 reader (crypto/x509.py): DER and PEM, and every derived field."""

from __future__ import annotations

from _harness import checked, run


def _read(data: bytes) -> None:
    from bpfsign.crypto import x509

    for cert in x509.certificates_from_bytes(data, source="fuzz"):
        cert.subject_str  # noqa: B018
        cert.issuer_str  # noqa: B018
        cert.key_ids  # noqa: B018
        repr(cert)


one_input = checked(_read)

if __name__ == "__main__":
    run("fuzz_x509")
