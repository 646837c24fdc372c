"""Signing with a key inside a PKCS#11 token (HSM, smart card, SoftHSM2), by RFC 7512 URI.

    pkcs11:token=bpfsign;object=signer?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin

* **Module**: the URI's ``module-path``, else ``$BPFSIGN_PKCS11_MODULE``, else
  SoftHSM2's ``/usr/lib/softhsm/libsofthsm2.so`` (:data:`DEFAULT_MODULE`).
* **Token**: by ``token`` (label), ``serial``, ``manufacturer`` and/or ``model``;
  never by slot number (SoftHSM2 renumbers slots when a token is initialised).
* **Key**: the private key with the URI's ``object`` (CKA_LABEL) and/or ``id``
  (CKA_ID, percent-encoded bytes).
* **PIN**: the URI's ``pin-value``, or ``pin-source`` (a ``file:`` URI or a
  path: its first line), else the environment variable named by ``pin_env``,
  else ``$BPFSIGN_PKCS11_PIN``, else a prompt when stdin is a terminal.
* **Certificate**: a file given by the caller, else the token's X.509
  certificate object with the key's label/id.

Mechanisms: RSA signs ``CKM_RSA_PKCS`` over the DigestInfo that bpfsign builds
(:func:`bpfsign.crypto.cms.digest_info`), so the output is byte-identical to signing
with the same key from a file; ECDSA (P-256, P-384) signs ``CKM_ECDSA`` over the
digest and the raw ``r || s`` is converted to a DER Ecdsa-Sig-Value. Every
signature is checked against the certificate's public key before it is used, so
a key/certificate mismatch (or a faulty token) is caught at signing time.

:func:`generate` makes a key pair inside the token (private key sensitive,
not extractable), a self-signed certificate whose TBSCertificate is built with
:mod:`bpfsign.crypto.der` and signed by the token (cryptography cannot sign with a key
it cannot hold), and stores the certificate in the token under the same
label and id.

Needs the optional binding ``python-pkcs11`` (``pip install 'bpfsign[pkcs11]'``):
chosen over PyKCS11 for its typed exceptions (wrong PIN, no such key, ... are
classes, not return codes to compare), its type hints (mypy --strict) and its
maintenance by the pyauth organisation. PINs never appear in messages or reprs.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

from ..errors import Error, InputError
from . import der
from .signer import HashName, KeyType

#: SoftHSM2's module on Debian; overridden by $BPFSIGN_PKCS11_MODULE or the URI's module-path.
DEFAULT_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
MODULE_ENV = "BPFSIGN_PKCS11_MODULE"
PIN_ENV = "BPFSIGN_PKCS11_PIN"
INSTALL_HINT = "PKCS#11 support is not installed: pip install 'bpfsign[pkcs11]'"

_PATH_ATTRS = {
    "token", "object", "id", "type", "serial", "manufacturer", "model",
    "library-manufacturer", "library-description", "library-version",
    "slot-manufacturer", "slot-description", "slot-id",
}  # fmt: skip
_QUERY_ATTRS = {"pin-value", "pin-source", "module-path", "module-name"}
_CURVE_OIDS = {"P-256": "1.2.840.10045.3.1.7", "P-384": "1.3.132.0.34"}
_CURVE_BY_NAME = {"secp256r1": "P-256", "secp384r1": "P-384"}
_CURVE_BYTES = {"P-256": 32, "P-384": 48}
_SELF_SIG_HASH: dict[str, HashName] = {"P-256": "sha256", "P-384": "sha384"}
_SIG_ALG_OIDS = {
    ("rsa", "sha256"): "1.2.840.113549.1.1.11",
    ("ec", "sha256"): "1.2.840.10045.4.3.2",
    ("ec", "sha384"): "1.2.840.10045.4.3.3",
}


class Pkcs11Error(Error):
    """The token or its module refused (exit code 1); bad URIs and PINs are InputError."""


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed ``pkcs11:`` URI (RFC 7512); ``pin_value`` is kept out of repr and str."""

    path: dict[str, bytes]
    query: dict[str, bytes] = field(repr=False)

    def text(self, name: str) -> str | None:
        value = self.path.get(name)
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def label(self) -> str | None:
        return self.text("object")

    @property
    def key_id(self) -> bytes | None:
        return self.path.get("id")

    @property
    def token_label(self) -> str | None:
        return self.text("token")

    def describe_object(self) -> str:
        """``object=LABEL;id=HEX`` as far as the URI says (for messages)."""
        parts = []
        if self.label is not None:
            parts.append(f"object={self.label}")
        if self.key_id is not None:
            parts.append(f"id={self.key_id.hex()}")
        return ";".join(parts)

    def describe_token(self) -> str:
        keys = ("token", "serial", "manufacturer", "model")
        return ";".join(f"{k}={self.text(k)}" for k in keys if k in self.path) or "any token"

    def __str__(self) -> str:  # without pin-value
        parts = (
            f"{k}={v.hex() if k == 'id' else v.decode(errors='replace')}"
            for k, v in self.path.items()
        )
        return "pkcs11:" + ";".join(parts)


def parse_uri(uri: str) -> Pkcs11Uri:
    """Parse an RFC 7512 ``pkcs11:`` URI; unknown attributes are refused, not ignored."""
    if not uri.startswith("pkcs11:"):
        raise InputError("not a PKCS#11 URI (it must start with pkcs11:)")
    body = uri[len("pkcs11:") :]
    path_part, _, query_part = body.partition("?")
    path: dict[str, bytes] = {}
    query: dict[str, bytes] = {}
    for part, sep, allowed, out in (
        (path_part, ";", _PATH_ATTRS, path),
        (query_part, "&", _QUERY_ATTRS, query),
    ):
        for item in part.split(sep) if part else ():
            name, eq, value = item.partition("=")
            if not eq:
                raise InputError(f"PKCS#11 URI attribute {name!r} has no value (expected {name}=…)")
            if name not in allowed and not name.startswith("x-"):
                where = "path" if out is path else "query"
                raise InputError(
                    f"unknown PKCS#11 URI {where} attribute {name!r}; use "
                    + ", ".join(sorted(allowed))
                )
            if name in out:
                raise InputError(f"PKCS#11 URI attribute {name!r} is given twice")
            out[name] = unquote_to_bytes(value)
    if "type" in path and path["type"] not in (b"private", b"cert", b"public"):
        raise InputError(
            f"PKCS#11 URI type={path['type'].decode(errors='replace')} names no key or "
            "certificate; use type=private (or drop it)"
        )
    return Pkcs11Uri(path, query)


def _binding() -> Any:
    try:
        import pkcs11
    except ModuleNotFoundError as exc:
        if exc.name != "pkcs11":
            raise
        raise InputError(INSTALL_HINT) from None
    return pkcs11


def module_path(uri: Pkcs11Uri) -> str:
    if "module-name" in uri.query:
        raise InputError(
            "the PKCS#11 URI attribute module-name is not supported; give module-path=/path/to/module.so"
        )
    given = uri.query.get("module-path")
    if given is not None:
        return os.fsdecode(given)
    return os.environ.get(MODULE_ENV) or DEFAULT_MODULE


def load_module(path: str) -> Any:
    """The PKCS#11 module at ``path``, initialised (once per process)."""
    pkcs11 = _binding()
    if not os.path.exists(path):
        raise InputError(
            f"cannot load the PKCS#11 module {path}: file not found (set module-path= in the "
            f"URI or ${MODULE_ENV}; Debian's SoftHSM2 is {DEFAULT_MODULE}, package softhsm2)"
        )
    try:
        return pkcs11.lib(path)
    except pkcs11.PKCS11Error:
        raise InputError(
            f"cannot load the PKCS#11 module {path}: not a loadable PKCS#11 library"
        ) from None


def _pin_text(pin: bytes, where: str) -> str:
    try:
        return pin.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"the PIN from {where} is not UTF-8 text") from None


def resolve_pin(uri: Pkcs11Uri, pin_env: str | None = None, *, prompt: bool = True) -> str:
    """The user PIN, from the URI, ``pin_env``, $BPFSIGN_PKCS11_PIN or a terminal prompt."""
    from .keysource import read_secret_file, secret_from_env, tty_prompt

    if "pin-value" in uri.query:
        if "pin-source" in uri.query:
            raise InputError("the PKCS#11 URI gives both pin-value and pin-source; keep one")
        return _pin_text(uri.query["pin-value"], "the URI's pin-value")
    source = uri.query.get("pin-source")
    if source is not None:
        text = os.fsdecode(source)
        if text.startswith("file:"):
            text = text[len("file:") :]
            if text.startswith("//"):  # file:///path (empty authority)
                text = text[2:]
        elif "://" in text or text.startswith("|"):
            raise InputError(
                f"unsupported pin-source {text!r}: give a file: URI or a path to a file"
            )
        return _pin_text(read_secret_file(text, "PIN"), text)
    if pin_env is not None:
        return _pin_text(secret_from_env(pin_env, "token PIN"), f"${pin_env}")
    value = os.environ.get(PIN_ENV)
    if value is not None:
        return value
    asked = tty_prompt(f"PIN for PKCS#11 token {uri.describe_token()}: ") if prompt else None
    if asked is None:
        raise InputError(
            f"the PKCS#11 token {uri.describe_token()} needs its user PIN: give pin-source= "
            f"in the URI, name an environment variable that holds it or set ${PIN_ENV}, or run "
            "on a terminal to be prompted"
        )
    return _pin_text(asked, "the prompt")


def open_session(uri: Pkcs11Uri, pin: str, *, rw: bool = False) -> Any:
    """Find the one token the URI names and log in as the user."""
    pkcs11 = _binding()
    lib = load_module(module_path(uri))
    wanted = {
        "token": uri.token_label,
        "serial": uri.text("serial"),
        "manufacturer": uri.text("manufacturer"),
        "model": uri.text("model"),
    }
    tokens = []
    present = []
    for slot in lib.get_slots(token_present=True):
        try:
            token = slot.get_token()
        except (pkcs11.TokenNotPresent, pkcs11.TokenNotRecognised):
            continue
        have = {
            "token": token.label,
            "serial": token.serial.decode("ascii", "replace").strip(),
            "manufacturer": token.manufacturer_id,
            "model": token.model,
        }
        if not token.flags & pkcs11.TokenFlag.TOKEN_INITIALIZED:
            continue
        present.append(token.label)
        if all(v is None or have[k] == v for k, v in wanted.items()):
            tokens.append(token)
    if not tokens:
        listed = ", ".join(repr(label) for label in present) or "none"
        raise InputError(
            f"no PKCS#11 token matches {uri.describe_token()} in module {lib.so} "
            f"(initialised tokens: {listed})"
        )
    if len(tokens) > 1:
        raise InputError(
            f"{len(tokens)} PKCS#11 tokens match {uri.describe_token()}; add serial= to the URI"
        )
    token = tokens[0]
    try:
        return token.open(user_pin=pin, rw=rw)
    except pkcs11.UserAlreadyLoggedIn:
        # Login state belongs to the process, not the session: another session of ours
        # (e.g. a second signer) logged in already, so a new session has the user's rights.
        return token.open(rw=rw)
    except pkcs11.PinIncorrect:
        raise InputError(f"wrong PIN for PKCS#11 token {token.label!r}") from None
    except pkcs11.PinLenRange:
        raise InputError(
            f"wrong PIN for PKCS#11 token {token.label!r} (its length is out of the token's range)"
        ) from None
    except pkcs11.PinLocked:
        raise InputError(
            f"the user PIN of PKCS#11 token {token.label!r} is locked; reset it with the SO PIN"
        ) from None
    except pkcs11.UserPinNotInitialized:
        raise InputError(f"PKCS#11 token {token.label!r} has no user PIN set") from None
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11Error(
            f"cannot log in to PKCS#11 token {token.label!r}: {type(exc).__name__}"
        ) from None


def _find(session: Any, uri: Pkcs11Uri, object_class: Any) -> list[Any]:
    pkcs11 = _binding()
    attrs: dict[Any, Any] = {pkcs11.Attribute.CLASS: object_class}
    if uri.label is not None:
        attrs[pkcs11.Attribute.LABEL] = uri.label
    if uri.key_id is not None:
        attrs[pkcs11.Attribute.ID] = uri.key_id
    return list(session.get_objects(attrs))


def _one(found: list[Any], uri: Pkcs11Uri, token: str, what: str) -> Any:
    if not found:
        raise InputError(f"no {what} {uri.describe_object()} in PKCS#11 token {token!r}")
    if len(found) > 1:
        raise InputError(
            f"{len(found)} {what}s match {uri.describe_object()} in PKCS#11 token {token!r}; "
            "add id= to the URI"
        )
    return found[0]


def _require_object(uri: Pkcs11Uri) -> None:
    if uri.label is None and uri.key_id is None:
        raise InputError(f"the PKCS#11 URI {uri} names no key: add object=LABEL and/or id=%XX…")
    if uri.path.get("type") in (b"cert", b"public"):
        raise InputError(
            f"the PKCS#11 URI {uri} has type={uri.text('type')}; a signing key is type=private"
        )


def _token_sign(
    key: Any, key_type: KeyType, curve_bytes: int, digest: bytes, hash_name: HashName,
    token: str, what: str,
) -> bytes:  # fmt: skip
    """One signature by the token: CKM_RSA_PKCS over DigestInfo, or CKM_ECDSA made DER."""
    from . import cms

    pkcs11 = _binding()
    size = hashlib.new(hash_name).digest_size
    if len(digest) != size:
        raise InputError(f"{hash_name} digest must be {size} bytes, got {len(digest)}")
    try:
        to_sign = cms.digest_info(hash_name, digest) if key_type == "rsa" else digest
    except ValueError as exc:
        raise InputError(str(exc)) from None
    mechanism = pkcs11.Mechanism.RSA_PKCS if key_type == "rsa" else pkcs11.Mechanism.ECDSA
    try:
        raw = bytes(key.sign(to_sign, mechanism=mechanism))
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11Error(f"{token} refused to sign with {what}: {type(exc).__name__}") from None
    if key_type == "ec":
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        if len(raw) != 2 * curve_bytes:
            raise Pkcs11Error(
                f"{token} returned a {len(raw)}-byte ECDSA signature; expected r||s of "
                f"{2 * curve_bytes} bytes"
            )
        r, s_ = raw[:curve_bytes], raw[curve_bytes:]
        raw = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s_, "big"))
    return raw


class Pkcs11Signer:
    """A ``bpfsign.Signer`` whose private key stays in a PKCS#11 token."""

    def __init__(self, session: Any, key: Any, cert_der: bytes, *, uri: Pkcs11Uri) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        pkcs11 = _binding()
        self._session = session
        self._key = key
        self._uri = uri
        self._token = session.token.label
        try:
            cert = x509.load_der_x509_certificate(cert_der)
            public = cert.public_key()
        except ValueError:
            raise InputError("not an X.509 certificate (expected DER)") from None
        self._public = public
        self._cert_der = cert.public_bytes(serialization.Encoding.DER)
        self._subject = cert.subject.rfc4514_string()
        key_type = key.key_type
        self._curve_bytes = 0
        self._key_type: KeyType
        if key_type == pkcs11.KeyType.RSA and isinstance(public, rsa.RSAPublicKey):
            self._key_type = "rsa"
            if public.key_size < 2048:
                raise InputError(
                    f"RSA key of {public.key_size} bits is too small; use at least 2048"
                )
        elif key_type == pkcs11.KeyType.EC and isinstance(public, ec.EllipticCurvePublicKey):
            self._key_type = "ec"
            curve = _CURVE_BY_NAME.get(public.curve.name)
            if curve is None:
                raise InputError(
                    f"unsupported EC curve {public.curve.name}: the kernel verifies BPF "
                    "signatures with P-256 or P-384 only"
                )
            self._curve_bytes = _CURVE_BYTES[curve]
        else:
            raise InputError(
                f"the private key {uri.describe_object()} in PKCS#11 token {self._token!r} "
                f"({getattr(key_type, 'name', key_type)}) does not match the certificate's "
                f"public key (certificate subject {self._subject})"
            )

    @classmethod
    def open(
        cls, uri_text: str, *, cert: str | None = None, pin_env: str | None = None
    ) -> Pkcs11Signer:
        """Open the token, log in, find the key and its certificate (file or token)."""
        uri = parse_uri(uri_text)
        _require_object(uri)
        pin = resolve_pin(uri, pin_env)
        _binding()
        session = open_session(uri, pin)
        try:
            pkcs11 = _binding()
            token = session.token.label
            key = _one(
                _find(session, uri, pkcs11.ObjectClass.PRIVATE_KEY),
                uri, token, "private key",
            )  # fmt: skip
            if cert is not None:
                from .keys import load_certificate

                cert_der = load_certificate(cert)
            else:
                found = _find(session, uri, pkcs11.ObjectClass.CERTIFICATE)
                if not found:
                    raise InputError(
                        f"no certificate {uri.describe_object()} in PKCS#11 token {token!r}: "
                        "give the certificate file, or store one with the key's label and id, "
                        "as key generation in the token does"
                    )
                cert_der = bytes(_one(found, uri, token, "certificate")[pkcs11.Attribute.VALUE])
            return cls(session, key, cert_der, uri=uri)
        except BaseException:
            session.close()
            raise

    @property
    def certificate(self) -> bytes:
        return self._cert_der

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    def sign_digest(self, digest: bytes, hash_name: HashName) -> bytes:
        """RSA: CKM_RSA_PKCS over DigestInfo; EC: CKM_ECDSA, r||s converted to DER."""
        raw = _token_sign(
            self._key, self._key_type, self._curve_bytes, digest, hash_name,
            f"PKCS#11 token {self._token!r}", self._uri.describe_object(),
        )  # fmt: skip
        self._check(raw, digest, hash_name)
        return raw

    def _check(self, signature: bytes, digest: bytes, hash_name: HashName) -> None:
        """The signature must verify with the certificate: catches a key/cert mismatch."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
        from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

        algorithm = Prehashed(getattr(hashes, hash_name.upper())())
        try:
            if isinstance(self._public, rsa.RSAPublicKey):
                self._public.verify(signature, digest, padding.PKCS1v15(), algorithm)
            elif isinstance(self._public, ec.EllipticCurvePublicKey):
                self._public.verify(signature, digest, ec.ECDSA(algorithm))
        except InvalidSignature:
            raise InputError(
                f"the private key {self._uri.describe_object()} in PKCS#11 token "
                f"{self._token!r} does not match the certificate's public key (certificate "
                f"subject {self._subject}); pass the certificate that belongs to it"
            ) from None

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never a PIN
        fingerprint = hashlib.sha256(self._cert_der).hexdigest()[:16]
        return (
            f"Pkcs11Signer(token={self._token!r}, {self._uri.describe_object()}, "
            f"key_type={self._key_type!r}, cert_sha256={fingerprint}...)"
        )


# -- key generation inside the token ------------------------------------------------------


@dataclass(frozen=True)
class TokenKey:
    """What :func:`generate` made: the certificate (DER), its SKID, the key's label and id."""

    cert_der: bytes
    skid: bytes
    label: str
    key_id: bytes


def _name(common_name: str) -> bytes:
    attr = der.sequence(der.oid("2.5.4.3"), der.encode(der.UTF8_STRING, common_name.encode()))
    return der.sequence(der.set_of(attr))


def _time(moment: datetime.datetime) -> bytes:
    if moment.year < 2050:  # RFC 5280 4.1.2.5
        return der.encode(der.UTC_TIME, moment.strftime("%y%m%d%H%M%SZ").encode())
    return der.encode(der.GENERALIZED_TIME, moment.strftime("%Y%m%d%H%M%SZ").encode())


def _extension(oid: str, critical: bool, value: bytes) -> bytes:
    parts = [der.oid(oid)]
    if critical:
        parts.append(b"\x01\x01\xff")
    return der.sequence(*parts, der.octet_string(value))


def build_tbs_certificate(
    spki: bytes, skid: bytes, *, subject: str, days: int, sig_alg: bytes, serial: int
) -> bytes:
    """A self-signed v3 TBSCertificate with what the kernel needs (as keys.generate):
    basicConstraints CA:FALSE and keyUsage digitalSignature (critical), SKID, AKID."""
    name = _name(subject)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    validity = der.sequence(
        _time(now - datetime.timedelta(minutes=5)), _time(now + datetime.timedelta(days=days))
    )
    extensions = der.sequence(
        _extension("2.5.29.19", True, der.sequence()),
        _extension("2.5.29.15", True, der.encode(der.BIT_STRING, b"\x07\x80")),
        _extension("2.5.29.14", False, der.octet_string(skid)),
        _extension("2.5.29.35", False, der.sequence(der.context(0, skid, constructed=False))),
    )
    return der.sequence(
        der.context(0, der.integer(2)),
        der.integer(serial),
        sig_alg,
        name,
        validity,
        name,
        spki,
        der.context(3, extensions),
    )


def generate(
    uri_text: str,
    kind: KeyType = "rsa",
    *,
    bits: int = 3072,
    curve: Literal["P-256", "P-384"] = "P-256",
    subject: str = "bpfsign",
    days: int = 3650,
    pin_env: str | None = None,
) -> TokenKey:
    """Make a key pair in the token, a self-signed certificate signed by the token, and store
    the certificate beside the key (same label and id). The id defaults to the SKID."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if kind == "rsa" and not 2048 <= bits <= 16384:
        raise InputError(f"RSA key size {bits} is out of range; use 2048..16384")
    if kind == "ec" and curve not in _CURVE_OIDS:
        raise InputError(f"unsupported curve {curve!r}; use P-256 or P-384")
    if kind not in ("rsa", "ec"):
        raise InputError(f"unsupported key type {kind!r}; use rsa or ec")
    if days < 1:
        raise InputError(f"validity of {days} days is too short; use at least 1")
    if not subject:
        raise InputError("the subject common name must not be empty")
    uri = parse_uri(uri_text)
    if uri.label is None:
        raise InputError(f"the PKCS#11 URI {uri} needs object=LABEL for the new key")
    pkcs11 = _binding()
    pin = resolve_pin(uri, pin_env)
    session = open_session(uri, pin, rw=True)
    with session:
        token = session.token.label
        taken = [
            obj
            for cls in (
                pkcs11.ObjectClass.PRIVATE_KEY,
                pkcs11.ObjectClass.PUBLIC_KEY,
                pkcs11.ObjectClass.CERTIFICATE,
            )
            for obj in _find(session, uri, cls)
        ]
        if taken:
            raise InputError(
                f"PKCS#11 token {token!r} already holds {len(taken)} object(s) "
                f"{uri.describe_object()}; choose another object= label"
            )
        capabilities = pkcs11.MechanismFlag.SIGN | pkcs11.MechanismFlag.VERIFY
        private_template = {
            pkcs11.Attribute.SENSITIVE: True,
            pkcs11.Attribute.EXTRACTABLE: False,
            pkcs11.Attribute.PRIVATE: True,
        }
        temp_id = uri.key_id or secrets.token_bytes(20)
        try:
            if kind == "rsa":
                pub, priv = session.generate_keypair(
                    pkcs11.KeyType.RSA, bits, id=temp_id, label=uri.label, store=True,
                    capabilities=capabilities, private_template=private_template,
                )  # fmt: skip
                public_key: Any = rsa.RSAPublicNumbers(
                    int.from_bytes(pub[pkcs11.Attribute.PUBLIC_EXPONENT], "big"),
                    int.from_bytes(pub[pkcs11.Attribute.MODULUS], "big"),
                ).public_key()
                hash_name: HashName = "sha256"
            else:
                params = session.create_domain_parameters(
                    pkcs11.KeyType.EC,
                    {pkcs11.Attribute.EC_PARAMS: der.oid(_CURVE_OIDS[curve])},
                    local=True,
                )
                pub, priv = params.generate_keypair(
                    id=temp_id, label=uri.label, store=True, capabilities=capabilities,
                    private_template=private_template,
                )  # fmt: skip
                point = der.read(bytes(pub[pkcs11.Attribute.EC_POINT]))
                public_key = ec.EllipticCurvePublicKey.from_encoded_point(
                    ec.SECP256R1() if curve == "P-256" else ec.SECP384R1(), point.content
                )
                hash_name = _SELF_SIG_HASH[curve]
        except pkcs11.PKCS11Error as exc:
            raise Pkcs11Error(
                f"PKCS#11 token {token!r} could not generate the {kind} key: {type(exc).__name__}"
            ) from None
        try:
            spki = public_key.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            skid = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
            key_id = uri.key_id or skid
            if key_id != temp_id:
                pub[pkcs11.Attribute.ID] = key_id
                priv[pkcs11.Attribute.ID] = key_id
            sig_oid = _SIG_ALG_OIDS[(kind, hash_name)]
            sig_alg = (
                der.sequence(der.oid(sig_oid), der.null())
                if kind == "rsa"
                else der.sequence(der.oid(sig_oid))
            )
            tbs = build_tbs_certificate(
                spki, skid, subject=subject, days=days, sig_alg=sig_alg,
                serial=int.from_bytes(secrets.token_bytes(19), "big") | (1 << 150),
            )  # fmt: skip
            digest = hashlib.new(hash_name, tbs).digest()
            signature = _token_sign(
                priv, kind, _CURVE_BYTES[curve] if kind == "ec" else 0, digest, hash_name,
                f"PKCS#11 token {token!r}", uri.describe_object(),
            )  # fmt: skip
            cert_der = der.sequence(tbs, sig_alg, der.encode(der.BIT_STRING, b"\x00" + signature))
            cert = x509.load_der_x509_certificate(cert_der)
            cert.verify_directly_issued_by(cert)
            session.create_object({
                pkcs11.Attribute.CLASS: pkcs11.ObjectClass.CERTIFICATE,
                pkcs11.Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                pkcs11.Attribute.TOKEN: True,
                pkcs11.Attribute.PRIVATE: False,
                pkcs11.Attribute.LABEL: uri.label,
                pkcs11.Attribute.ID: key_id,
                pkcs11.Attribute.SUBJECT: _name(subject),
                pkcs11.Attribute.ISSUER: _name(subject),
                pkcs11.Attribute.SERIAL_NUMBER: der.integer(cert.serial_number),
                pkcs11.Attribute.VALUE: cert_der,
            })  # fmt: skip
        except BaseException:
            for obj in (pub, priv):  # leave no half-made key behind
                with contextlib.suppress(pkcs11.PKCS11Error):
                    obj.destroy()
            raise
    return TokenKey(cert_der, skid, uri.label, key_id)
