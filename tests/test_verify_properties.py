"""Properties of sign/verify, and which single-byte signature mutations still verify.

The exhaustive test flips every byte of the 375-byte bpftool-shape RSA-2048
signature (XOR 0x01 and XOR 0xff).  A mutation that still verifies must be
explained by a kernel rule; the table below names the rule for each.

Measured on 7.3.4 (the same 750 mutations of a bpftool-shape signature over a
2-insn SYSCALL program and its metadata map, loaded in the qemu guest): the
kernel loads exactly these 22 and refuses the other 728 with the same errno
bpfsign.crypto.verify gives (512 EKEYREJECTED, 97 EBADMSG, 43 EINVAL, 40 ENOKEY,
36 ENOPKG); no case differed.
"""

from __future__ import annotations

from errno import EKEYREJECTED
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _backends import crypto_backend  # noqa: F401  (autouse: every test under both backends)
from _pki import PemSigner, pki
from bpfsign.crypto import cms
from bpfsign.crypto.trust import TrustStore
from bpfsign.crypto.verify import verify
from bpfsign.errors import VerificationError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def signer() -> PemSigner:
    return PemSigner(pki("rsa2048"))


@pytest.fixture(scope="module")
def store() -> TrustStore:
    trust = TrustStore()
    trust.add(pki("rsa2048").cert_der)
    return trust


@SETTINGS
@given(payload=st.binary(max_size=2048))
def test_random_payloads_round_trip(payload: bytes, signer: PemSigner, store: TrustStore) -> None:
    sig = cms.sign(payload, signer)
    assert verify(payload, sig, store).digest_algorithm == "sha256"


@SETTINGS
@given(payload=st.binary(min_size=1, max_size=512), data=st.data())
def test_any_payload_byte_flip_is_rejected(
    payload: bytes, data: st.DataObject, signer: PemSigner, store: TrustStore
) -> None:
    sig = cms.sign(payload, signer)
    pos = data.draw(st.integers(0, len(payload) - 1))
    bit = data.draw(st.integers(1, 255))
    changed = payload[:pos] + bytes((payload[pos] ^ bit,)) + payload[pos + 1 :]
    with pytest.raises(VerificationError) as info:
        verify(changed, sig, store)
    assert info.value.errno == EKEYREJECTED


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_signatures_only_raise_verification_errors(
    data: st.DataObject, signer: PemSigner, store: TrustStore
) -> None:
    payload = b"payload"
    original = cms.sign(payload, signer) if data.draw(st.booleans()) else _with_attrs()
    sig = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        pos = data.draw(st.integers(0, max(len(sig) - 1, 0)))
        if kind == "set" and sig:
            sig[pos] = data.draw(st.integers(0, 255))
        elif kind == "insert":
            sig[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and sig:
            del sig[pos]
        elif kind == "truncate":
            del sig[pos:]
    try:
        verify(payload, bytes(sig), store)
    except VerificationError:
        return
    # it still verifies: a kernel rule must explain every difference from the original
    assert explain(original, bytes(sig)) is not None, (original.hex(), bytes(sig).hex())


_ATTR_SIG: list[bytes] = []


def _with_attrs() -> bytes:
    """An openssl signature with signed attributes over b"payload" (made once)."""
    if not _ATTR_SIG:
        from _pki import openssl_sign

        _ATTR_SIG.append(
            openssl_sign(pki("rsa2048"), b"payload", "-nosmimecap", "-nocerts", "-keyid")
        )
    return _ATTR_SIG[0]


# Positions in the 375-byte bpftool shape (docs/cms.md §1.1) where a mutation still verifies,
# with the kernel rule that makes it so.  (position, xor) -> explanation.
_DIGEST_SET_OID = (
    "digestAlgorithms SET entry OID: the kernel only notes it (pkcs7_note_OID) and never "
    "cross-checks it with the SignerInfo digestAlgorithm (docs/kernel.md §12.2)"
)
EXPLAINED: dict[tuple[int, int], str] = {
    (
        26,
        0x01,
    ): "digestAlgorithms tag SET 0x31 -> SEQUENCE 0x30: pkcs7.asn1 accepts SET OF or SEQUENCE OF (§12.2)",
    **{(pos, x): _DIGEST_SET_OID for pos in range(32, 41) for x in (0x01, 0xFF)},
    (
        54,
        0x01,
    ): "signerInfos tag SET 0x31 -> SEQUENCE 0x30: pkcs7.asn1 accepts SET OF or SEQUENCE OF (§12.2)",
    (
        113,
        0x01,
    ): "signatureAlgorithm parameters NULL (05 00) -> 04 00: parameters are ANY and ignored (§12.2)",
    (
        113,
        0xFF,
    ): "signatureAlgorithm parameters NULL (05 00) -> fa 00: parameters are ANY and ignored (§12.2)",
}


# -- the same rules, by structure rather than by offset -----------------------------

RULES = {
    "digestAlgorithms": _DIGEST_SET_OID,
    "set-or-sequence": "SET OF <-> SEQUENCE OF tags of digestAlgorithms/signerInfos: pkcs7.asn1 "
    "accepts either (§12.2)",
    "signature-parameters": "signatureAlgorithm parameters are ANY and ignored (§12.2)",
}

_Tree = tuple[int, "bytes | list[_Tree]"]


def _parse(data: bytes, pos: int, end: int) -> tuple[_Tree, int] | None:
    """One TLV (definite lengths, at most 2 length octets like the kernel) or None."""
    if end - pos < 2:
        return None
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        n = first & 0x7F
        if n not in (1, 2) or end - pos < n:
            return None
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    else:
        length = first
    if length > end - pos:
        return None
    stop = pos + length
    if not tag & 0x20:
        return (tag, data[pos:stop]), stop
    children: list[_Tree] = []
    while pos < stop:
        got = _parse(data, pos, stop)
        if got is None:
            return None
        child, pos = got
        children.append(child)
    return (tag, children), stop


def _normalise(sig: bytes, rules: set[str]) -> _Tree | None:
    """The signature's tree with what ``rules`` say the kernel ignores blanked out."""
    got = _parse(sig, 0, len(sig))
    if got is None or got[1] != len(sig):
        return None
    root: Any = got[0]  # walked by position; a wrong shape raises and gives None
    try:
        content = root[1][1]
        signed_data = content[1][0]
        fields = list(signed_data[1])
        if "digestAlgorithms" in rules:
            fields[1] = (0x31, b"<noted, never checked>")
        infos_tag, infos = fields[-1]
        if "set-or-sequence" in rules:
            infos_tag = 0x31 if infos_tag in (0x30, 0x31) else infos_tag
            tag1, value1 = fields[1]
            fields[1] = (0x31 if tag1 in (0x30, 0x31) else tag1, value1)
        new_infos = []
        for info in infos:
            parts = list(info[1])
            if "signature-parameters" in rules:
                at = 4 if parts[3][0] == 0xA0 else 3  # after the optional signedAttrs
                alg_tag, alg = parts[at]
                parts[at] = (alg_tag, [alg[0], (0x05, b"<ignored>")])
            new_infos.append((info[0], parts))
        fields[-1] = (infos_tag, new_infos)
    except (IndexError, TypeError, KeyError):
        return None
    return (root[0], [root[1][0], (content[0], [(signed_data[0], fields)])])


def explain(original: bytes, mutated: bytes) -> str | None:
    """Which named kernel rules make ``mutated`` equivalent to ``original`` (None: none do)."""
    if original == mutated:
        return "unchanged"
    for size in range(1, len(RULES) + 1):
        import itertools

        for combo in itertools.combinations(RULES, size):
            want = _normalise(original, set(combo))
            if want is not None and want == _normalise(mutated, set(combo)):
                return "; ".join(RULES[r] for r in combo)
    return None


def test_exhaustive_single_byte_mutations(signer: PemSigner, store: TrustStore) -> None:
    payload = bytes(range(16))
    sig = cms.sign(payload, signer)
    assert len(sig) == 375
    survivors: list[tuple[int, int]] = []
    for pos in range(len(sig)):
        for xor in (0x01, 0xFF):
            mutated = sig[:pos] + bytes((sig[pos] ^ xor,)) + sig[pos + 1 :]
            try:
                verify(payload, mutated, store)
            except VerificationError:
                continue
            survivors.append((pos, xor))
    for pos, xor in survivors:
        print(
            f"still verifies: byte {pos} ^ 0x{xor:02x} ({sig[pos]:02x} -> {sig[pos] ^ xor:02x}): {EXPLAINED.get((pos, xor), 'UNEXPLAINED')}"
        )
    assert sorted(survivors) == sorted(EXPLAINED)
    # and the structural rules explain each one too, so the property test can use them
    for pos, xor in survivors:
        mutated = sig[:pos] + bytes((sig[pos] ^ xor,)) + sig[pos + 1 :]
        assert explain(sig, mutated) is not None, (pos, xor)


def test_the_structural_explainer_refuses_what_the_kernel_would_not_ignore(
    signer: PemSigner,
) -> None:
    sig = cms.sign(b"x", signer)
    assert explain(sig, sig[:-1] + bytes((sig[-1] ^ 1,))) is None  # the signature value
    assert explain(sig, sig + b"\0") is None  # trailing data
