"""``bpfsign keygen``, ``sign`` and ``verify``: thin wrappers over keys, cms and verify.

Only argparse is imported at start-up; each handler imports what it needs, and
the verify path never imports cryptography.x509/serialization or keys.py, so a
single ``bpfsign verify`` stays close to one ``openssl cms -verify`` run.
"""

from __future__ import annotations

import os
import sys

from . import _common

# argparse and typing are needed here only by the type checker (CLI start-up is timed).
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any, Literal

#: Environment variable holding the passphrase of an encrypted key file.
PASSPHRASE_ENV = "BPFSIGN_KEY_PASSPHRASE"
SKELETON_MARKER = b"bpf_load_and_run"


def register(sub: Any) -> None:
    _register_keygen(sub)
    _register_sign(sub)
    _register_verify(sub)


def _register_keygen(sub: Any) -> None:
    p = sub.add_parser(
        "keygen",
        help="make a signing key and a self-signed certificate the kernel accepts",
        description="Write a private key (mode 0600, PEM) and a self-signed X.509 certificate "
        "with subjectKeyIdentifier, keyUsage digitalSignature and CA:FALSE.",
    )
    p.add_argument("--type", dest="key_type", choices=("rsa", "ec"), default="rsa")
    p.add_argument("--bits", type=int, default=3072, help="RSA key size (default 3072)")
    p.add_argument("--curve", choices=("P-256", "P-384"), default="P-256", help="EC curve")
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
    p.set_defaults(handler=_keygen)


def _register_sign(sub: Any) -> None:
    p = sub.add_parser(
        "sign",
        help="sign files (writes FILE.p7s) or light skeletons",
        description="Sign each FILE with a detached CMS signature in the bpftool shape and "
        "write FILE.p7s. Light skeletons (*.lskel.h) are signed in place. An encrypted key's "
        "passphrase comes from --passphrase-file, --passphrase-env, "
        f"${PASSPHRASE_ENV} or a terminal prompt. --key may be a PKCS#11 URI "
        "(pkcs11:token=T;object=LABEL?module-path=/path/module.so&pin-source=file:/path): "
        "its PIN comes from the URI, --pin-env, $BPFSIGN_PKCS11_PIN or a terminal prompt.",
    )
    p.add_argument(
        "--key", required=True, metavar="K", help="private key file (PEM or DER) or pkcs11: URI"
    )
    p.add_argument(
        "--cert",
        metavar="C",
        help="certificate, PEM or DER (with a pkcs11: key, default: the token's certificate "
        "with the key's label/id)",
    )
    _add_key_options(p)
    p.add_argument("--digest", choices=("sha256", "sha384", "sha512"), default="sha256")
    p.add_argument(
        "--sid",
        choices=("skid", "issuer-serial"),
        default="skid",
        help="how the SignerInfo names the signer (default skid, like bpftool)",
    )
    p.add_argument(
        "--scheme",
        choices=("loadtime", "inloader"),
        default="loadtime",
        help="light skeletons: which signing scheme (default loadtime)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="light skeletons: refuse loaders whose audit finds unsigned inputs",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="output path (only with one FILE)")
    p.add_argument("files", nargs="+", metavar="FILE")
    _common.add_json(p)
    p.set_defaults(handler=_sign)


def _add_key_options(p: Any) -> None:
    p.add_argument(
        "--passphrase-file",
        metavar="F",
        help="read an encrypted key file's passphrase from the first line of F",
    )
    p.add_argument(
        "--passphrase-env",
        metavar="NAME",
        help=f"read an encrypted key file's passphrase from environment variable NAME "
        f"(default ${PASSPHRASE_ENV}, else a terminal prompt)",
    )
    p.add_argument(
        "--insecure-key-permissions",
        action="store_true",
        help="use a key file that its group or others can read (refused by default)",
    )
    p.add_argument(
        "--pin-env",
        metavar="NAME",
        help="pkcs11: keys: read the token's user PIN from environment variable NAME "
        "(default: the URI's pin-value/pin-source, $BPFSIGN_PKCS11_PIN, else a terminal prompt)",
    )


def _register_verify(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="verify signatures offline with the kernel's rules",
        description="Verify each FILE against FILE.p7s (or --sig) offline, giving the verdict "
        "and errno the kernel would. Many files verify in one run.",
    )
    p.add_argument(
        "--trust",
        action="append",
        required=True,
        metavar="CERT_OR_DIR",
        help="trusted certificate(s): PEM/DER file or directory (repeatable)",
    )
    p.add_argument(
        "--keyring-id",
        type=int,
        default=None,
        metavar="N",
        help="the loader's keyring_id (default -3, the session keyring). --trust certificates "
        "go into that keyring when it is 0, 1, 2, -3, -4 or -5; other ids resolve as the "
        "kernel does (EINVAL or ENOKEY)",
    )
    p.add_argument("--sig", metavar="FILE.p7s", help="signature file (only with one FILE)")
    p.add_argument("files", nargs="+", metavar="FILE")
    _common.add_json(p)
    p.set_defaults(handler=_verify)


# -- start-up fast path ------------------------------------------------------

_VERIFY_VALUE_OPTIONS = ("--trust", "--sig", "--keyring-id")


def parse_verify_fast(argv: Sequence[str]) -> argparse.Namespace | None:
    """Parse the plain ``verify`` arguments without argparse, or return None.

    Building the argparse tree costs more than a whole ``openssl cms -verify``
    run (gettext probes the locale for every subcommand), so the CLI entry can
    try this first for ``bpfsign verify ...``. It accepts only the exact
    spellings ``--trust X``, ``--sig X``, ``--keyring-id N``, ``--json`` and
    file names; anything else (``--help``, ``--trust=X``, abbreviations, ``--``,
    a bad number) returns None, and argparse then parses or reports it.
    tests/test_cli.py checks that both parsers agree.
    """
    from types import SimpleNamespace

    trust: list[str] = []
    files: list[str] = []
    values: dict[str, str] = {}
    as_json = False
    args = iter(argv)
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg in _VERIFY_VALUE_OPTIONS:
            value = next(args, None)
            if value is None or (value.startswith("-") and arg != "--keyring-id"):
                return None
            if arg == "--trust":
                trust.append(value)
            else:
                values[arg] = value
        elif arg.startswith("-"):
            return None
        else:
            files.append(arg)
    if not trust or not files:
        return None
    keyring_id = None
    if "--keyring-id" in values:
        try:
            keyring_id = int(values["--keyring-id"])
        except ValueError:
            return None
    namespace = SimpleNamespace(
        command="verify", trust=trust, keyring_id=keyring_id, sig=values.get("--sig"),
        json=as_json, files=files, handler=_verify,
    )  # fmt: skip
    return namespace  # type: ignore[return-value]  # duck-typed like argparse.Namespace


# -- shared helpers -----------------------------------------------------------


def _is_skeleton(path: str, data: bytes | None = None) -> bool:
    if path.endswith(".lskel.h"):
        return True
    if data is None:
        return False
    return b"\0" not in data and SKELETON_MARKER in data


def _read_input(path: str) -> bytes:
    from ..errors import InputError

    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InputError("file not found", path=path) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", path=path) from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", path=path) from None


def _delegate_skeleton(args: argparse.Namespace, path: str, action: str) -> dict[str, Any]:
    """The skeleton's record; its errors propagate to the caller's per-file handling."""
    from ..errors import InputError

    try:
        from . import _skel
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}._skel":
            raise
        raise InputError(
            f"light skeleton {action} is not available in this build "
            "(module bpfsign.cli._skel is missing)",
            path=path,
        ) from None
    handler = _skel.sign_skeleton if action == "signing" else _skel.verify_skeleton
    return handler(args, path)


def _worst(a: int, b: int) -> int:
    """Combine per-file exit codes: an input error outranks a rejection."""
    return max(a, b)


def _error_record(path: str, kind: str, exc: Exception) -> dict[str, Any]:
    record: dict[str, Any] = {
        "file": path,
        "kind": kind,
        "ok": False,
        "error": type(exc).__name__,
        "message": getattr(exc, "reason", str(exc)),
    }
    if getattr(exc, "line", None) is not None:
        record["line"] = exc.line  # type: ignore[attr-defined]
    code = getattr(exc, "errno", None)
    if code is not None:
        from ..errors import errno_name

        record["errno"] = code
        record["errno_name"] = errno_name(code)
    return record


def _finish(args: argparse.Namespace, records: list[dict[str, Any]], code: int) -> int:
    """Under --json, the whole run is ONE document: the list of per-file records."""
    if args.json:
        _common.emit(args, records, "")
    return code


# -- keygen -------------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    from ..crypto import keys
    from ..errors import InputError

    if args.pkcs11 is not None:
        return _keygen_pkcs11(args)
    if args.key is None or args.cert is None:
        raise InputError("keygen needs --key OUT.key and --cert OUT.crt (or --pkcs11 URI)")
    if args.pin_env is not None:
        raise InputError("--pin-env is for keygen --pkcs11")
    if os.path.abspath(args.key) == os.path.abspath(args.cert):
        raise InputError("--key and --cert must be different files", path=args.key)
    if not args.force:
        for path in (args.key, args.cert):
            if os.path.lexists(path):
                raise InputError("already exists; pass --force to overwrite it", path=path)
    pair = keys.generate(
        args.key_type, bits=args.bits, curve=args.curve, subject=args.subject, days=args.days
    )
    keys.write_key(args.key, pair.key)
    keys.write_cert(args.cert, pair.cert_der)
    size = f"rsa {args.bits}" if args.key_type == "rsa" else f"ec {args.curve}"
    record = {
        "ok": True,
        "key": args.key,
        "cert": args.cert,
        "type": args.key_type,
        "bits": args.bits if args.key_type == "rsa" else None,
        "curve": args.curve if args.key_type == "ec" else None,
        "subject": f"CN={args.subject}",
        "skid": pair.skid.hex(),
        "days": args.days,
    }
    text = (
        f"wrote {args.key} ({size}, mode 0600) and {args.cert} "
        f"(CN={args.subject}, skid {pair.skid.hex()})"
    )
    _common.emit(args, record, text)
    return _common.EXIT_OK


def _keygen_pkcs11(args: argparse.Namespace) -> int:
    from ..crypto import keys, pkcs11
    from ..errors import InputError

    if args.key is not None:
        raise InputError("--key and --pkcs11 exclude each other: the key stays in the token")
    if args.cert is not None and not args.force and os.path.lexists(args.cert):
        raise InputError("already exists; pass --force to overwrite it", path=args.cert)
    made = pkcs11.generate(
        args.pkcs11,
        args.key_type,
        bits=args.bits,
        curve=args.curve,
        subject=args.subject,
        days=args.days,
        pin_env=args.pin_env,
    )
    if args.cert is not None:
        keys.write_cert(args.cert, made.cert_der)
    uri = pkcs11.parse_uri(args.pkcs11)
    size = f"rsa {args.bits}" if args.key_type == "rsa" else f"ec {args.curve}"
    record = {
        "ok": True,
        "pkcs11": f"pkcs11:token={uri.token_label};object={made.label};id={made.key_id.hex()}"
        if uri.token_label is not None
        else f"pkcs11:object={made.label};id={made.key_id.hex()}",
        "cert": args.cert,
        "type": args.key_type,
        "bits": args.bits if args.key_type == "rsa" else None,
        "curve": args.curve if args.key_type == "ec" else None,
        "subject": f"CN={args.subject}",
        "skid": made.skid.hex(),
        "days": args.days,
    }
    written = f"; wrote {args.cert}" if args.cert is not None else ""
    text = (
        f"made {size} key {made.label!r} (id {made.key_id.hex()}) in PKCS#11 token "
        f"{uri.describe_token()} and stored its certificate (CN={args.subject}, "
        f"skid {made.skid.hex()}) beside it{written}"
    )
    _common.emit(args, record, text)
    return _common.EXIT_OK


# -- sign ---------------------------------------------------------------------


def _sign(args: argparse.Namespace) -> int:
    from ..errors import InputError

    if args.output is not None and len(args.files) != 1:
        raise InputError("-o/--output needs exactly one FILE")
    try:
        return _sign_files(args)
    finally:
        close = getattr(getattr(args, "_signer", None), "close", None)
        if close is not None:  # a token session: log out now, not at exit
            close()


def _sign_files(args: argparse.Namespace) -> int:
    from ..errors import Error

    signer = None
    records: list[dict[str, Any]] = []
    code = _common.EXIT_OK
    for path in args.files:
        kind = "skeleton" if _is_skeleton(path) else "file"
        try:
            if kind == "file":
                payload = _read_input(path)
                kind = "skeleton" if _is_skeleton(path, payload) else "file"
            if kind == "skeleton":
                records.append(_delegate_skeleton(args, path, "signing"))
                continue
            if signer is None:
                signer = _load_signer(args)
            records.append(_sign_file(args, signer, path, payload))
        except Error as exc:
            if exc is getattr(args, "_signer_error", None):
                raise  # the key itself is bad: nothing else can be signed
            records.append(_error_record(path, kind, exc))
            if not args.json:
                print(f"bpfsign: {exc}", file=sys.stderr)
            code = _worst(code, exc.exit_code)
    return _finish(args, records, code)


def _load_signer(args: argparse.Namespace) -> Any:
    """The run's signer, opened once (a token session and a prompt are not per file)."""
    cached = getattr(args, "_signer", None)
    if cached is not None:
        return cached
    from ..crypto.keysource import open_signer
    from ..errors import Error

    try:
        args._signer = open_signer(
            args.key,
            args.cert,
            passphrase_file=getattr(args, "passphrase_file", None),
            passphrase_env=getattr(args, "passphrase_env", None),
            insecure_key_permissions=bool(getattr(args, "insecure_key_permissions", False)),
            pin_env=getattr(args, "pin_env", None),
        )
    except Error as exc:
        args._signer_error = exc  # _sign stops the run: no other file can be signed
        raise
    return args._signer


def _sign_file(args: argparse.Namespace, signer: Any, path: str, payload: bytes) -> dict[str, Any]:
    from .._fileio import atomic_write
    from ..crypto import cms

    sid: Literal["skid", "issuer_serial"] = (
        "issuer_serial" if args.sid == "issuer-serial" else "skid"
    )
    signature = cms.sign(payload, signer, digest=args.digest, sid=sid)
    out = args.output or path + ".p7s"
    atomic_write(out, signature)
    if not args.json:
        print(f"SIGNED {path} -> {out} ({len(signature)} bytes, {args.digest}, {args.sid})")
    return {
        "file": path,
        "kind": "file",
        "ok": True,
        "signature": out,
        "bytes": len(signature),
        "digest": args.digest,
        "sid": args.sid,
    }


# -- verify -------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from ..errors import Error, InputError, VerificationError

    if args.sig is not None and len(args.files) != 1:
        raise InputError("--sig needs exactly one FILE (without it, FILE.p7s is used)")
    trust = None
    records: list[dict[str, Any]] = []
    code = _common.EXIT_OK
    for path in args.files:
        kind = "skeleton" if _is_skeleton(path) else "file"
        try:
            if kind == "file":
                payload = _read_input(path)
                kind = "skeleton" if _is_skeleton(path, payload) else "file"
            if kind == "skeleton":
                records.append(_delegate_skeleton(args, path, "verification"))
                continue
            sig_path = args.sig or path + ".p7s"
            try:
                signature = _read_input(sig_path)
            except InputError as exc:
                raise InputError(
                    f"no signature: {exc.reason}; pass --sig or sign it with `bpfsign sign`",
                    path=sig_path,
                ) from None
            if trust is None:
                trust = _load_trust(args)
            records.append(_verify_file(args, trust, path, sig_path, payload, signature))
        except VerificationError as exc:
            record = _error_record(path, kind, exc)
            if kind == "file":  # a skeleton's signature is inside the header
                record["signature"] = args.sig or path + ".p7s"
            records.append(record)
            if not args.json:
                print(f"REJECTED {path}: {exc}", file=sys.stderr)
            code = _worst(code, _common.EXIT_REJECTED)
        except Error as exc:
            if getattr(exc, "path", None) in args.trust and path not in args.trust:
                raise  # the trust store itself is bad
            records.append(_error_record(path, kind, exc))
            if not args.json:
                print(f"bpfsign: {exc}", file=sys.stderr)
            code = _worst(code, exc.exit_code)
    store = getattr(args, "_trust_store", None)
    if store is not None and store.warnings:
        for record in records:  # under --json the trust warnings travel with each verdict
            record["warnings"] = [*record.get("warnings", []), *store.warnings]
    return _finish(args, records, code)


#: keyring_ids whose keyring --trust certificates can be placed in; any other id is
#: only resolved (EINVAL or ENOKEY, as the kernel answers).
_PLACEABLE_KEYRINGS = (0, 1, 2, -3, -4, -5)


def _load_trust(args: argparse.Namespace) -> Any:
    """The run's trust store, built once (plain files and skeletons share it)."""
    from ..crypto.trust import TrustStore

    cached = getattr(args, "_trust_store", None)
    if cached is not None:
        return cached
    keyring_id = args.keyring_id
    trust = TrustStore(platform=keyring_id == 2)
    target = keyring_id if keyring_id in _PLACEABLE_KEYRINGS else "session"
    for path in args.trust:
        trust.add_path(path, keyring=target)
    if not args.json:
        for warning in trust.warnings:
            print(f"bpfsign: warning: {warning}", file=sys.stderr)
    args._trust_store = trust
    return trust


def _verify_file(
    args: argparse.Namespace,
    trust: Any,
    path: str,
    sig_path: str,
    payload: bytes,
    signature: bytes,
) -> dict[str, Any]:
    from ..crypto.verify import verify

    if args.keyring_id is None:
        result = verify(payload, signature, trust)
    else:
        result = verify(payload, signature, trust, keyring_id=args.keyring_id)
    record = {"file": path, "kind": "file", "signature": sig_path, "ok": True, **result._asdict()}
    record["warnings"] = list(result.warnings)
    if not args.json:
        print(
            f"OK {path}: signer {result.signer_subject}, {result.digest_algorithm}, "
            f"{result.signature_algorithm}"
        )
        for warning in result.warnings:
            print(f"bpfsign: warning: {path}: {warning}", file=sys.stderr)
    return record
