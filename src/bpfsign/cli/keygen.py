"""``bpfsign keygen``: a signing key and a self-signed certificate the kernel accepts."""

from __future__ import annotations

import os

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from typing import Any

    from ..crypto.keys import Curve
    from ..crypto.signer import KeyType


@options
class KeygenOptions:
    key: str | None = None
    cert: str | None = None
    pkcs11: str | None = None
    pin_env: str | None = None
    key_type: KeyType = "rsa"
    bits: int = 3072
    curve: Curve = "P-256"
    subject: str = "bpfsign"
    days: int = 3650
    force: bool = False
    json: bool = False


def register(sub: Any) -> None:
    p = sub.add_parser(
        "keygen",
        help="make a signing key and a self-signed certificate the kernel accepts",
        description="Write a private key (mode 0600, PEM) and a self-signed X.509 certificate "
        "with subjectKeyIdentifier, keyUsage digitalSignature and CA:FALSE.",
    )
    p.add_argument(
        "--type",
        dest="key_type",
        choices=("rsa", "ec"),
        default="rsa",
        help="key algorithm (default rsa)",
    )
    p.add_argument("--bits", type=int, default=3072, help="RSA key size (default 3072)")
    p.add_argument(
        "--curve",
        choices=("P-256", "P-384"),
        default="P-256",
        help="EC curve, with --type ec (default P-256)",
    )
    p.add_argument("--subject", default="bpfsign", metavar="CN", help="certificate common name")
    p.add_argument("--days", type=int, default=3650, help="certificate validity (default 3650)")
    p.add_argument("--key", metavar="OUT.key", help="private key to write")
    p.add_argument(
        "--cert",
        metavar="OUT.crt",
        help="certificate to write (DER if it ends in .der, else PEM); optional with --pkcs11",
    )
    p.add_argument(
        "--pkcs11",
        metavar="URI",
        help="make the key pair inside a PKCS#11 token (pkcs11:token=T;object=LABEL[;id=%%XX]"
        "?pin-source=file:F) and store its self-signed certificate there too",
    )
    p.add_argument(
        "--pin-env", metavar="NAME", help="--pkcs11: read the token's user PIN from NAME"
    )
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    _common.add_json(p)
    _common.set_command(p, KeygenOptions, handle)


def handle(opts: KeygenOptions) -> int:
    from ..crypto import keys
    from ..errors import InputError

    if opts.pkcs11 is not None:
        return _keygen_pkcs11(opts)
    if opts.key is None or opts.cert is None:
        raise InputError("keygen needs --key OUT.key and --cert OUT.crt (or --pkcs11 URI)")
    if opts.pin_env is not None:
        raise InputError("--pin-env is for keygen --pkcs11")
    if os.path.abspath(opts.key) == os.path.abspath(opts.cert):
        raise InputError("--key and --cert must be different files", path=opts.key)
    if not opts.force:
        for path in (opts.key, opts.cert):
            if os.path.lexists(path):
                raise InputError("already exists; pass --force to overwrite it", path=path)
    pair = keys.generate(
        opts.key_type, bits=opts.bits, curve=opts.curve, subject=opts.subject, days=opts.days
    )
    keys.write_key(opts.key, pair.key)
    keys.write_cert(opts.cert, pair.cert_der)
    size = f"rsa {opts.bits}" if opts.key_type == "rsa" else f"ec {opts.curve}"
    record = {
        "ok": True,
        "key": opts.key,
        "cert": opts.cert,
        "type": opts.key_type,
        "bits": opts.bits if opts.key_type == "rsa" else None,
        "curve": opts.curve if opts.key_type == "ec" else None,
        "subject": f"CN={opts.subject}",
        "skid": pair.skid.hex(),
        "days": opts.days,
    }
    text = (
        f"wrote {opts.key} ({size}, mode 0600) and {opts.cert} "
        f"(CN={opts.subject}, skid {pair.skid.hex()})"
    )
    _common.emit(opts, record, text)
    return _common.EXIT_OK


def _keygen_pkcs11(opts: KeygenOptions) -> int:
    from ..crypto import keys, pkcs11
    from ..errors import InputError

    assert opts.pkcs11 is not None
    if opts.key is not None:
        raise InputError("--key and --pkcs11 exclude each other: the key stays in the token")
    if opts.cert is not None and not opts.force and os.path.lexists(opts.cert):
        raise InputError("already exists; pass --force to overwrite it", path=opts.cert)
    made = pkcs11.generate(
        opts.pkcs11,
        opts.key_type,
        bits=opts.bits,
        curve=opts.curve,
        subject=opts.subject,
        days=opts.days,
        pin_env=opts.pin_env,
    )
    if opts.cert is not None:
        keys.write_cert(opts.cert, made.cert_der)
    uri = pkcs11.parse_uri(opts.pkcs11)
    size = f"rsa {opts.bits}" if opts.key_type == "rsa" else f"ec {opts.curve}"
    token = f"token={uri.token_label};" if uri.token_label is not None else ""
    record = {
        "ok": True,
        "pkcs11": f"pkcs11:{token}object={made.label};id={made.key_id.hex()}",
        "cert": opts.cert,
        "type": opts.key_type,
        "bits": opts.bits if opts.key_type == "rsa" else None,
        "curve": opts.curve if opts.key_type == "ec" else None,
        "subject": f"CN={opts.subject}",
        "skid": made.skid.hex(),
        "days": opts.days,
    }
    written = f"; wrote {opts.cert}" if opts.cert is not None else ""
    text = (
        f"made {size} key {made.label!r} (id {made.key_id.hex()}) in PKCS#11 token "
        f"{uri.describe_token()} and stored its certificate (CN={opts.subject}, "
        f"skid {made.skid.hex()}) beside it{written}"
    )
    _common.emit(opts, record, text)
    return _common.EXIT_OK
