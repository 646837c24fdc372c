"""Fuzz the PKCS#7 parser (both rule sets) and the verifier over a fixed payload and trust."""

from __future__ import annotations

from _harness import FIXTURES, checked, run

_TRUST = None


def _trust():  # type: ignore[no-untyped-def]
    global _TRUST
    if _TRUST is None:
        from bpfsign.crypto.trust import TrustStore
        from bpfsign.crypto.x509 import load_certificates

        _TRUST = TrustStore()
        for cert in load_certificates(FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"):
            _TRUST.add(cert)
    return _TRUST


def _parse_and_verify(data: bytes) -> None:
    from bpfsign.crypto import cms, verify

    for rules in (False, True):
        try:
            cms.parse_signed_data(data, kernel_rules=rules)
        except Exception as exc:
            import bpfsign

            if not isinstance(exc, bpfsign.Error):
                raise
    verify.verify(b"payload", data, _trust())


one_input = checked(_parse_and_verify)

if __name__ == "__main__":
    run("fuzz_cms")
