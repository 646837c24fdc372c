"""The DER/BER codec: the kernel decoder's limits (docs/kernel.md §12.1) and the DER writer."""

from __future__ import annotations

import contextlib

import pytest
from asn1crypto import core
from hypothesis import given, settings
from hypothesis import strategies as st

from bpfsign.crypto import der


def test_reads_definite_sequence_and_keeps_raw_bytes() -> None:
    data = bytes.fromhex("300502010305000000")  # SEQUENCE { INTEGER 3, NULL } + trailing
    top = der.read(data)
    assert (top.tag, top.length, top.end, top.indefinite) == (0x30, 5, 7, False)
    kids = top.children()
    assert [k.tag for k in kids] == [der.INTEGER, der.NULL]
    assert der.decode_integer(kids[0]) == 3
    assert top.raw == data[:7]


def test_non_minimal_lengths_are_accepted() -> None:
    # 81 05 and 82 00 05 both mean 5, as the kernel's decoder allows
    for header in ("3081", "308200"):
        top = der.read(bytes.fromhex(header + "05" + "0203010001"))
        assert top.length == 5
        assert der.decode_integer(top.children()[0]) == 65537


@pytest.mark.parametrize(
    ("hexdata", "reason"),
    [
        ("3f0100", "long-form tag number, which the kernel's decoder rejects"),
        ("3083000003020100", "3 length octets; the kernel's decoder accepts at most 2"),
        ("0480000000", "indefinite length on a primitive element"),
        ("3080020100", "indefinite-length element without end-of-contents"),
        ("30800201000001", "invalid end-of-contents (non-zero length)"),
        ("3005020100", "length 5 runs past the end of the enclosing element (3 bytes left)"),
        ("3003020200", "length 2 runs past the end of the enclosing element (1 byte left)"),
        ("3001", "length 1 runs past the end of the enclosing element (0 bytes left)"),
        ("30", "truncated: an element header runs past the end of the data"),
    ],
)
def test_kernel_decoder_rejections(hexdata: str, reason: str) -> None:
    data = bytes.fromhex(hexdata)
    with pytest.raises(der.DERError) as info:
        top = der.read(data)
        for _ in top.iter_children():
            pass
    assert info.value.reason == reason


def test_indefinite_constructed_is_read_up_to_its_eoc() -> None:
    data = bytes.fromhex("3080" + "3080" + "020101" + "0000" + "0000")
    top = der.read(data)
    assert top.indefinite and top.end == len(data) and top.length == 7
    (child,) = top.children()
    assert child.indefinite and der.decode_integer(child.children()[0]) == 1


def _nested(levels: int) -> bytes:
    data = b"\x05\x00"
    for _ in range(levels):
        data = der.sequence(data)
    return data


def test_nesting_limit_is_ten_constructed_levels() -> None:
    def walk(el: der.Element) -> None:
        if el.constructed:
            for kid in el.children():
                walk(kid)

    walk(der.read(_nested(10)))
    with pytest.raises(der.DERError, match="more than 10 nested constructed elements"):
        walk(der.read(_nested(11)))


@given(st.integers(min_value=-(2**300), max_value=2**300))
def test_integer_encoding_matches_asn1crypto(value: int) -> None:
    assert der.integer(value) == core.Integer(value).dump()
    assert der.decode_integer(der.read(der.integer(value))) == value


@pytest.mark.parametrize(
    "dotted",
    [
        "1.2.840.113549.1.7.2",
        "2.16.840.1.101.3.4.2.1",
        "1.3.132.0.34",
        "2.999.1",
        "0.9.2342.19200300.100.1.25",
    ],
)
def test_oid_round_trip_matches_asn1crypto(dotted: str) -> None:
    assert der.oid(dotted) == core.ObjectIdentifier(dotted).dump()
    assert der.oid_to_str(der.oid_to_bytes(dotted)) == dotted


@settings(max_examples=200)
@given(st.binary(max_size=20))
def test_oid_to_str_never_raises(content: bytes) -> None:
    assert isinstance(der.oid_to_str(content), str)


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_reader_raises_only_derror(data: bytes) -> None:
    def walk(el: der.Element) -> None:
        if el.constructed:
            for kid in el.children():
                walk(kid)

    with contextlib.suppress(der.DERError):
        walk(der.read(data))


def test_writer_lengths_and_set_ordering() -> None:
    assert der.encode_length(0x7F) == b"\x7f"
    assert der.encode_length(0x80) == b"\x81\x80"
    assert der.encode_length(0x100) == b"\x82\x01\x00"
    assert der.set_of(b"\x02\x01\x02", b"\x02\x01\x01") == bytes.fromhex("3106020101020102")
    assert der.context(0, b"\x01", constructed=False) == b"\x80\x01\x01"
    assert der.null() == core.Null().dump()


def test_der_errors_are_bpfsign_verification_errors_with_ebadmsg() -> None:
    import errno

    import bpfsign

    with pytest.raises(der.DERError) as info:
        der.read(bytes.fromhex("3005020100"))
    e = info.value
    assert isinstance(e, bpfsign.VerificationError) and isinstance(e, bpfsign.Error)
    assert isinstance(e, ValueError)  # generic parsers of untrusted bytes still catch it
    assert e.errno == errno.EBADMSG and e.exit_code == 1
    assert e.reason == "length 5 runs past the end of the enclosing element (3 bytes left)"
    assert e.offset == 0 and e.detail == e.reason + " (at byte 0)"
    assert str(e) == "EBADMSG (74): " + e.detail
