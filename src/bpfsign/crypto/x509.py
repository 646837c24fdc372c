"""X.509 certificates, parsed with our own DER codec.

Why not ``cryptography.x509``: importing it costs ~45 ms, and the verify path
has a budget of ~32 ms for the whole process.  We need only what the kernel
uses: the raw issuer and serial (its issuer+serial key id), the SKID, the AKID,
the public key numbers, validity and the TBS bytes (for the blacklist hash).
The public key object is built from numbers with pyca only when asked for.
"""

from __future__ import annotations

import binascii
import os
from collections.abc import Callable

from ..errors import InputError
from . import _oids, der

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~8 ms of start-up)
if TYPE_CHECKING:
    from typing import Any


class CertificateError(InputError):
    """The bytes are not an X.509 certificate the kernel's parser would take."""


class NotACertificate(CertificateError):
    """The file is something else (a key, a README): a directory skips it, a named file fails."""


_NAME_ATTRS: dict[bytes, str] = {
    bytes.fromhex("550403"): "CN",
    bytes.fromhex("550406"): "C",
    bytes.fromhex("550407"): "L",
    bytes.fromhex("550408"): "ST",
    bytes.fromhex("55040a"): "O",
    bytes.fromhex("55040b"): "OU",
    bytes.fromhex("550405"): "serialNumber",
    bytes.fromhex("2a864886f70d010901"): "emailAddress",
    bytes.fromhex("0992268993f22c640119"): "DC",
}


def name_to_str(name: bytes) -> str:
    """Readable form of a DER Name, RDNs in encoded order (``CN=a, O=b``)."""
    try:
        parts: list[str] = []
        for rdn in der.read(name).children():
            for ava in rdn.children():
                kids = ava.children()
                label = _NAME_ATTRS.get(kids[0].content) or der.oid_to_str(kids[0].content)
                value = kids[1]
                if value.tag == der.BMP_STRING:
                    text = value.content.decode("utf-16-be", "replace")
                elif value.tag in (der.UTF8_STRING, der.PRINTABLE_STRING, der.IA5_STRING):
                    text = value.content.decode("utf-8", "replace")
                else:
                    text = value.content.decode("latin-1")
                parts.append(f"{label}={text}")
        return ", ".join(parts)
    except (der.DERError, IndexError):
        return "<unparsable name " + name.hex() + ">"


def _days_from_civil(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def decode_time(tag: int, content: bytes) -> int:
    """UTCTime/GeneralizedTime -> seconds since the epoch, as strictly as the kernel
    (``x509_decode_time``: only the ``Z`` forms with seconds, fields range-checked)."""
    text = content.decode("ascii", "replace")
    if tag == der.UTC_TIME and len(text) == 13:
        year = int(text[:2]) if text[:2].isdigit() else -1
        year += 2000 if 0 <= year < 50 else 1900
        rest = text[2:]
    elif tag == der.GENERALIZED_TIME and len(text) == 15:
        year = int(text[:4]) if text[:4].isdigit() else -1
        rest = text[4:]
    else:
        raise ValueError(f"unsupported time encoding (tag 0x{tag:02x}, {len(content)} bytes)")
    if year < 0 or not rest[:10].isdigit() or rest[10] != "Z":
        raise ValueError(f"malformed time {text!r}")
    month, day, hour, minute, sec = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    mdays = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not (1 <= month <= 12 and 1 <= day <= mdays[month - 1]):
        raise ValueError(f"invalid date {text!r}")
    if hour == 24 and minute == 0 and sec == 0:  # the kernel allows 24:00:00
        pass
    elif hour > 23 or minute > 59 or sec > 60:
        raise ValueError(f"invalid time of day {text!r}")
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + sec


class Certificate:
    """An X.509 certificate: the raw fields the kernel keys on, plus readable ones.

    Immutable.  ``from_der`` is the constructor to use.
    """

    __slots__ = (
        "_cache",
        "_key_numbers",
        "_public_key",
        "akid",
        "curve",
        "der",
        "issuer",
        "key_bits",
        "key_type",
        "not_after",
        "not_before",
        "serial",
        "signature_algorithm",
        "signature_value",
        "skid",
        "spki_algorithm",
        "subject",
        "tbs",
    )

    der: bytes  #: the whole certificate, DER, as given
    tbs: bytes  #: the TBSCertificate exactly as encoded (the blacklist hashes this)
    serial: bytes  #: serialNumber INTEGER content octets (raw, leading zeros kept)
    issuer: bytes  #: issuer Name, full encoding as in the certificate
    subject: bytes  #: subject Name, full encoding
    not_before: int  #: validity start, seconds since the epoch
    not_after: int
    skid: bytes | None  #: subjectKeyIdentifier value (raw octets)
    akid: bytes | None  #: authorityKeyIdentifier keyIdentifier (raw octets)
    key_type: str  #: "rsa", "ec", "rsa-pss" or "unknown"
    curve: str | None  #: "P-256"/"P-384"/"P-521" for EC keys
    key_bits: int
    spki_algorithm: bytes  #: SubjectPublicKeyInfo algorithm OID content
    signature_algorithm: bytes  #: the certificate's own signature algorithm OID content
    signature_value: bytes  #: the certificate's signature (BIT STRING payload)
    _public_key: Any
    _cache: dict[str, str]
    _key_numbers: Any

    def __init__(self, **fields: Any) -> None:
        for key, value in fields.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "_public_key", None)
        object.__setattr__(self, "_cache", {})

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Certificate is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Certificate) and other.der == self.der

    def __hash__(self) -> int:
        return hash(self.der)

    def __repr__(self) -> str:
        return f"Certificate({self.subject_str!r}, {self.key_description})"

    @classmethod
    def from_der(cls, data: bytes) -> Certificate:
        """Parse a DER certificate; raises ``CertificateError`` saying what is wrong."""
        try:
            return _parse(bytes(data))
        except (der.DERError, ValueError, IndexError) as exc:
            if isinstance(exc, CertificateError):
                raise
            why = exc.detail if isinstance(exc, der.DERError) else str(exc)
            raise CertificateError(f"not a valid X.509 certificate: {why}") from None

    # -- ids the kernel uses ------------------------------------------------

    @property
    def issuer_serial_id(self) -> bytes:
        """The kernel's issuer+serial key id: serial content ‖ issuer Name content."""
        return self.serial + der.read(self.issuer).content

    @property
    def key_ids(self) -> tuple[bytes, ...]:
        """Every id the kernel gives this cert's key (``ex:`` search matches any)."""
        ids = [self.issuer_serial_id]
        if self.skid is not None:
            ids.append(self.skid)
        return tuple(ids)

    # -- readable -----------------------------------------------------------

    def _cached(self, key: str, make: Callable[[], str]) -> str:
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = make()
        return value

    @property
    def subject_str(self) -> str:
        return self._cached("subject", lambda: name_to_str(self.subject))

    @property
    def issuer_str(self) -> str:
        return self._cached("issuer", lambda: name_to_str(self.issuer))

    @property
    def serial_number(self) -> int:
        return int.from_bytes(self.serial, "big", signed=True)

    @property
    def fingerprint_sha256(self) -> str:
        return self._cached("sha256", lambda: _oids.digest("sha256", self.der).hex())

    @property
    def tbs_sha256(self) -> str:
        return _oids.digest("sha256", self.tbs).hex()

    @property
    def self_signed(self) -> bool:
        """Issuer equals subject, and the AKID (if any) names our own SKID."""
        if self.issuer != self.subject:
            return False
        return self.akid is None or self.skid is None or self.akid == self.skid

    @property
    def key_description(self) -> str:
        if self.key_type == "rsa":
            return f"RSA-{self.key_bits}"
        if self.key_type == "ec":
            return f"EC {self.curve}"
        if self.key_type == "rsa-pss":
            return f"RSA-PSS-{self.key_bits}"
        return f"unknown key type {_oids.name(self.spki_algorithm)}"

    @property
    def rsa_public_numbers(self) -> tuple[int, int]:
        """(n, e) of an RSA key (also an RSA-PSS one)."""
        if self.key_type not in ("rsa", "rsa-pss"):
            raise CertificateError(
                f"certificate {self.subject_str!r} has a {self.key_description} key, not RSA"
            )
        n, e = self._key_numbers
        return int(n), int(e)

    def public_key(self) -> Any:
        """The pyca public key, built from numbers (no x509/serialization import)."""
        cached = self._public_key
        if cached is not None:
            return cached
        numbers = self._key_numbers
        if self.key_type == "rsa":
            from cryptography.hazmat.primitives.asymmetric import rsa

            key: Any = rsa.RSAPublicNumbers(numbers[1], numbers[0]).public_key()
        elif self.key_type == "ec":
            from cryptography.hazmat.primitives.asymmetric import ec

            curves: dict[str, ec.EllipticCurve] = {
                "P-256": ec.SECP256R1(),
                "P-384": ec.SECP384R1(),
                "P-521": ec.SECP521R1(),
            }
            key = ec.EllipticCurvePublicKey.from_encoded_point(curves[str(self.curve)], numbers)
        else:
            raise CertificateError(
                f"certificate {self.subject_str!r} has a {self.key_description} key, "
                "which bpfsign (and the kernel) cannot verify with"
            )
        object.__setattr__(self, "_public_key", key)
        return key

    @property
    def public_key_der(self) -> bytes:
        """SubjectPublicKeyInfo DER of the key ``public_key()`` builds, for bindings that
        take DER (libcrypto's ``d2i_PUBKEY``).  Re-encoded from the parsed numbers, not
        sliced from the certificate, so OpenSSL sees exactly the key our parser read."""
        numbers = self._key_numbers
        if self.key_type == "rsa":
            alg = der.sequence(der.oid(_oids.RSA_ENCRYPTION), der.null())
            key = der.sequence(der.integer(numbers[0]), der.integer(numbers[1]))
        elif self.key_type == "ec":
            curve = next(oid for oid, (name, _) in _oids.CURVES.items() if name == self.curve)
            alg = der.sequence(der.oid(_oids.EC_PUBLIC_KEY), der.oid(curve))
            key = numbers
        else:
            raise CertificateError(
                f"certificate {self.subject_str!r} has a {self.key_description} key, "
                "which bpfsign (and the kernel) cannot verify with"
            )
        return der.sequence(alg, der.encode(der.BIT_STRING, b"\0" + key))


def _bit_string(element: der.Element) -> bytes:
    der.expect(element, der.BIT_STRING, "BIT STRING")
    content = element.content
    if not content or content[0] != 0:
        raise CertificateError("BIT STRING with unused bits")
    return content[1:]


def _check_name(name: der.Element, what: str) -> None:
    """A Name as x509.asn1 has it: SEQUENCE OF SET OF SEQUENCE {OID, value}.

    The kernel's decoder walks every AttributeValueAssertion of both names, so
    a malformed one fails the whole certificate there too.
    """
    for rdn in name.children():
        if rdn.tag != der.SET:
            raise CertificateError(
                f"malformed {what} Name: a RelativeDistinguishedName is not a SET"
            )
        for ava in rdn.children():
            parts = ava.children() if ava.tag == der.SEQUENCE else []
            if len(parts) != 2 or parts[0].tag != der.OID:
                raise CertificateError(
                    f"malformed {what} Name: an attribute is not SEQUENCE {{OID, value}}"
                )


def _parse(data: bytes) -> Certificate:
    top = der.expect(der.read(data), der.SEQUENCE, "Certificate SEQUENCE")
    if top.end != len(data):
        raise CertificateError(f"{len(data) - top.end} bytes after the certificate")
    tbs_el, sig_alg_el, sig_el = top.children()[:3]
    der.expect(tbs_el, der.SEQUENCE, "TBSCertificate SEQUENCE")
    fields = tbs_el.children()
    i = 0
    if fields[0].tag == 0xA0:  # [0] EXPLICIT version
        i = 1
    serial = der.expect(fields[i], der.INTEGER, "serialNumber INTEGER").content
    if not serial:
        raise CertificateError("empty serialNumber")
    issuer = der.expect(fields[i + 2], der.SEQUENCE, "issuer Name")
    validity = der.expect(fields[i + 3], der.SEQUENCE, "validity SEQUENCE").children()
    subject = der.expect(fields[i + 4], der.SEQUENCE, "subject Name")
    _check_name(issuer, "issuer")
    _check_name(subject, "subject")
    spki = der.expect(fields[i + 5], der.SEQUENCE, "SubjectPublicKeyInfo").children()
    not_before = decode_time(validity[0].tag, validity[0].content)
    not_after = decode_time(validity[1].tag, validity[1].content)

    alg = der.expect(spki[0], der.SEQUENCE, "AlgorithmIdentifier").children()
    spki_alg = der.expect(alg[0], der.OID, "algorithm OID").content
    key_bytes = _bit_string(spki[1])
    curve: str | None = None
    numbers: Any = None
    if spki_alg == _oids.RSA_ENCRYPTION or spki_alg == _oids.RSASSA_PSS:
        n_el, e_el = der.expect(der.read(key_bytes), der.SEQUENCE, "RSAPublicKey").children()
        n, e = der.decode_integer(n_el), der.decode_integer(e_el)
        if n <= 0 or e <= 0:
            raise CertificateError("RSA modulus or exponent not positive")
        key_type, bits, numbers = (
            "rsa" if spki_alg == _oids.RSA_ENCRYPTION else "rsa-pss",
            n.bit_length(),
            (n, e),
        )
    elif spki_alg == _oids.EC_PUBLIC_KEY:
        if len(alg) < 2 or alg[1].tag != der.OID:
            raise CertificateError("EC key without a namedCurve")
        known = _oids.CURVES.get(alg[1].content)
        key_type = "ec" if known else "unknown"
        curve, bits = known if known else (der.oid_to_str(alg[1].content), 0)
        numbers = key_bytes
    else:
        key_type, bits = "unknown", 0

    skid: bytes | None = None
    akid: bytes | None = None
    for extra in fields[i + 6 :]:
        if extra.tag != 0xA3:  # [1]/[2] unique ids are skipped
            continue
        exts = der.expect(extra.children()[0], der.SEQUENCE, "Extensions")
        for ext in exts.children():
            parts = ext.children()
            ext_oid = der.expect(parts[0], der.OID, "extnID").content
            value = der.expect(parts[-1], der.OCTET_STRING, "extnValue").content
            if ext_oid == _oids.SUBJECT_KEY_IDENTIFIER:
                skid = der.expect(der.read(value), der.OCTET_STRING, "SKID").content
            elif ext_oid == _oids.AUTHORITY_KEY_IDENTIFIER:
                for item in der.read(value).children():
                    if item.tag == 0x80:
                        akid = item.content

    sig_alg = der.expect(sig_alg_el, der.SEQUENCE, "signatureAlgorithm").children()
    return Certificate(
        der=data,
        tbs=tbs_el.raw,
        serial=serial,
        issuer=issuer.raw,
        subject=subject.raw,
        not_before=not_before,
        not_after=not_after,
        skid=skid,
        akid=akid,
        key_type=key_type,
        curve=curve,
        key_bits=bits,
        spki_algorithm=spki_alg,
        signature_algorithm=der.expect(sig_alg[0], der.OID, "algorithm OID").content,
        signature_value=_bit_string(sig_el),
        _key_numbers=numbers,
    )


_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


def looks_like_der(data: bytes) -> bool:
    """bpftool's sniff: a SEQUENCE with a 1..4-octet long-form length."""
    return len(data) > 2 and data[0] == 0x30 and 0x81 <= data[1] <= 0x84


def certificates_from_bytes(data: bytes, *, source: str = "<bytes>") -> list[Certificate]:
    """Every certificate in a DER blob or a PEM bundle."""
    if looks_like_der(data):
        try:
            return [Certificate.from_der(data)]
        except CertificateError as exc:
            raise NotACertificate(exc.reason, path=source) from None
    out: list[Certificate] = []
    pos = 0
    while True:
        start = data.find(_PEM_BEGIN, pos)
        if start < 0:
            break
        stop = data.find(_PEM_END, start)
        if stop < 0:
            raise CertificateError("PEM certificate block without an END line", path=source)
        try:
            blob = binascii.a2b_base64(data[start + len(_PEM_BEGIN) : stop])
            out.append(Certificate.from_der(blob))
        except (binascii.Error, CertificateError) as exc:
            why = exc.reason if isinstance(exc, CertificateError) else f"bad base64: {exc}"
            raise CertificateError(f"certificate #{len(out) + 1}: {why}", path=source) from None
        pos = stop + len(_PEM_END)
    if not out:
        raise NotACertificate(
            "no certificate found (expected DER, or PEM with BEGIN CERTIFICATE)", path=source
        )
    return out


def load_certificates(
    path: str | os.PathLike[str], *, skipped: list[str] | None = None
) -> list[Certificate]:
    """Certificates from a PEM/DER file, or from every regular file in a directory.

    A directory often holds the key next to the certificate, so its files that are
    no certificate at all are skipped, each with a warning appended to ``skipped``;
    a directory without any certificate, a broken PEM certificate block, or a
    named file that is no certificate is still an error.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        out: list[Certificate] = []
        passed: list[str] = []
        for entry in sorted(os.listdir(path)):
            full = os.path.join(path, entry)
            if not os.path.isfile(full):
                continue
            try:
                out.extend(load_certificates(full))
            except NotACertificate as exc:
                passed.append(f"{full}: skipped, not a certificate ({exc.reason})")
        if not out:
            why = f" ({len(passed)} other file{'s' if len(passed) != 1 else ''})" if passed else ""
            raise CertificateError(f"directory holds no certificates{why}", path=path)
        if skipped is not None:
            skipped.extend(passed)
        return out
    from .._fileio import MAX_SMALL_FILE, read_input

    data = read_input(path, limit=MAX_SMALL_FILE, what="certificate")
    return certificates_from_bytes(data, source=path)
