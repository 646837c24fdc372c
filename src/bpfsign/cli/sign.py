"""``bpfsign sign``: detached CMS signatures for files, in-place signatures for light skeletons."""

from __future__ import annotations

import os
import sys

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from typing import Any, Literal

    from ..crypto.signer import HashName, Signer
    from ..skel.scheme import Scheme
    from ..skel.skeleton import Skeleton

#: Environment variable holding the passphrase of an encrypted key file.
PASSPHRASE_ENV = "BPFSIGN_KEY_PASSPHRASE"


@options
class SignOptions:
    key: str
    cert: str
    files: tuple[str, ...]
    digest: HashName = "sha256"
    sid: Literal["skid", "issuer-serial"] = "skid"
    scheme: Scheme = "loadtime"
    keyring: str | None = None
    strict: bool = False
    output: str | None = None
    json: bool = False


def register(sub: Any) -> None:
    import argparse

    p = sub.add_parser(
        "sign",
        help="sign files (writes FILE.p7s) or light skeletons",
        description="Sign each FILE with a detached CMS signature in the bpftool shape and "
        "write FILE.p7s. Light skeletons (*.lskel.h) are signed in place. An encrypted key's "
        f"passphrase is read from ${PASSPHRASE_ENV}.",
    )
    p.add_argument("--key", required=True, metavar="K", help="private key, PEM or DER")
    p.add_argument("--cert", required=True, metavar="C", help="certificate, PEM or DER")
    p.add_argument(
        "--digest",
        choices=("sha256", "sha384", "sha512"),
        default="sha256",
        help="digest algorithm (default sha256, like bpftool)",
    )
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
        "--keyring",
        metavar="KEYRING",
        help="light skeletons: keyring the kernel checks the signature against, written into "
        "the header as keyring_id: session (-3), user, builtin (0), secondary (1), platform (2), "
        "bpf (-9) or a number",
    )
    p.add_argument("--keyring-id", dest="keyring", help=argparse.SUPPRESS)  # old spelling
    p.add_argument(
        "--strict",
        action="store_true",
        help="light skeletons: refuse loaders whose audit finds unsigned inputs",
    )
    p.add_argument("-o", "--output", metavar="OUT", help="output path (only with one FILE)")
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="file to sign (writes FILE.p7s), or a light skeleton header (signed in place)",
    )
    _common.add_json(p)
    _common.set_command(p, SignOptions, handle)


def handle(opts: SignOptions) -> int:
    from ..errors import Error, InputError

    if opts.output is not None and len(opts.files) != 1:
        raise InputError("-o/--output needs exactly one FILE")
    signer = None
    records: list[dict[str, Any]] = []
    code = _common.EXIT_OK
    for path in opts.files:
        kind = "skeleton" if _common.is_skeleton(path) else "file"
        try:
            if kind == "file":
                payload = _common.read_input(path)
                kind = "skeleton" if _common.is_skeleton(path, payload) else "file"
            if kind == "skeleton":
                from ..skel import skeleton

                skel = skeleton.load(path)  # a bad header is reported before a bad key
                signer = signer or _load_signer(opts)
                records.append(_sign_skeleton(opts, signer, path, skel))
            else:
                signer = signer or _load_signer(opts)
                records.append(_sign_file(opts, signer, path, payload))
        except Error as exc:
            if getattr(exc, "path", None) in (opts.key, opts.cert) and path not in (
                opts.key,
                opts.cert,
            ):
                raise  # the key itself is bad: nothing else can be signed
            records.append(_common.error_record(path, kind, exc))
            if not opts.json:
                print(f"bpfsign: {_common.cli_text(str(exc))}", file=sys.stderr)
            code = _common.worst(code, exc.exit_code)
    return _common.finish(opts, records, code)


def _load_signer(opts: SignOptions) -> Signer:
    from ..crypto.keys import FileSigner

    passphrase = os.environ.get(PASSPHRASE_ENV)
    return FileSigner.from_files(
        opts.key, opts.cert, password=passphrase.encode() if passphrase is not None else None
    )


def _sid(opts: SignOptions) -> Literal["skid", "issuer_serial"]:
    return "issuer_serial" if opts.sid == "issuer-serial" else "skid"


def _sign_file(opts: SignOptions, signer: Signer, path: str, payload: bytes) -> dict[str, Any]:
    from .._fileio import atomic_write
    from ..crypto import cms

    signature = cms.sign(payload, signer, digest=opts.digest, sid=_sid(opts))
    out = opts.output or path + ".p7s"
    atomic_write(out, signature)
    if not opts.json:
        print(f"SIGNED {path} -> {out} ({len(signature)} bytes, {opts.digest}, {opts.sid})")
    return {
        "file": path,
        "kind": "file",
        "ok": True,
        "signature": out,
        "bytes": len(signature),
        "digest": opts.digest,
        "sid": opts.sid,
    }


def _sign_skeleton(opts: SignOptions, signer: Signer, path: str, skel: Skeleton) -> dict[str, Any]:
    """Sign one header: in place, or to ``-o``. Returns the file's record."""
    from .._fileio import atomic_write
    from ..kernel import keyspec
    from ..skel import scheme

    text, report = scheme.sign_skeleton(
        skel,
        signer,
        scheme=opts.scheme,
        digest=opts.digest,
        sid=_sid(opts),
        keyring_id=None if opts.keyring is None else keyspec.keyring_id(opts.keyring),
        strict=opts.strict,
    )
    out = opts.output or path
    atomic_write(out, text.encode("utf-8", "surrogateescape"))
    record: dict[str, Any] = {
        "file": path,
        "kind": "skeleton",
        "output": out,
        "ok": True,
        "scheme": report.scheme,
        "payload_bytes": report.payload_size,
        "signature_bytes": report.signature_size,
        "excl_hash": report.excl_hash.hex(),
        "warnings": list(report.warnings),
        "override_maps": list(report.override_maps),
        "keyring_id": report.keyring_id,
        "notes": list(report.notes),
        "converted": None,
    }
    if report.converted is not None:
        r = report.converted
        record["converted"] = {
            "start": r.start,
            "count": r.count,
            "exclusivity_prefix": r.has_prefix,
            "jumps_fixed": list(r.jumps_fixed),
            "insns_before": r.insns_before,
            "insns_after": r.insns_after,
        }
    if not opts.json:
        for w in report.warnings:
            print(f"bpfsign: warning: {path}: {_common.cli_text(w)}", file=sys.stderr)
        if report.converted is not None:
            print(f"CONVERTED {path}: {report.converted.describe()}")
        payload = "insns + data" if report.scheme == "loadtime" else "insns"
        print(
            f"SIGNED {path} -> {out} ({report.scheme}: {report.signature_size}-byte signature over "
            f"{report.payload_size} bytes ({payload}))"
        )
        if report.keyring_id is not None:
            print(f"  set skel->keyring_id = {report.keyring_id} before __load()")
        for note in report.notes:
            print(f"  note: {_common.cli_text(note)}")
    return record
