"""``bpfsign sign``: detached CMS signatures for files, in-place signatures for light skeletons."""

from __future__ import annotations

import sys

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Literal

    from ..crypto.signer import HashName, Signer
    from ..errors import Error
    from ..skel.scheme import Scheme
    from ..skel.skeleton import Skeleton

#: Environment variable holding the passphrase of an encrypted key file.
PASSPHRASE_ENV = "BPFSIGN_KEY_PASSPHRASE"


@options
class SignOptions:
    key: str
    files: tuple[str, ...]
    cert: str | None = None
    passphrase_file: str | None = None
    passphrase_env: str | None = None
    insecure_key_permissions: bool = False
    pin_env: str | None = None
    digest: HashName = "sha256"
    sid: Literal["skid", "issuer-serial"] = "skid"
    scheme: Scheme = "loadtime"
    strict: bool = False
    blob: bool = False
    break_hardlinks: bool = False
    output: str | None = None
    json: bool = False


def register(sub: Any) -> None:
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
        "--strict",
        action="store_true",
        help="light skeletons: refuse loaders whose audit finds unsigned inputs",
    )
    p.add_argument(
        "--blob",
        action="store_true",
        help="sign every FILE as opaque bytes (FILE.p7s), even a header; without it a regular "
        "(non -L) BPF skeleton is refused, since it has no loader for the kernel to verify",
    )
    p.add_argument(
        "--break-hardlinks",
        action="store_true",
        help="replace an output file that has other hard links (they keep the old content); "
        "refused by default",
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
    _check_key_options(opts)
    signer: Signer | None = None
    key_error: list[Error] = []

    def get_signer() -> Signer:  # opened once: a token session and a prompt are not per file
        nonlocal signer
        if signer is None:
            try:
                signer = _load_signer(opts)
            except Error as exc:
                key_error.append(exc)
                raise
        return signer

    try:
        return _sign_all(opts, get_signer, key_error)
    finally:
        close = getattr(signer, "close", None)
        if close is not None:  # a token session: log out now, not at exit
            close()


def _sign_all(opts: SignOptions, get_signer: Callable[[], Signer], key_error: list[Error]) -> int:
    from ..errors import Error

    records: list[dict[str, Any]] = []
    code = _common.EXIT_OK
    for path in opts.files:
        kind = "skeleton" if _common.is_skeleton(path) and not opts.blob else "file"
        try:
            if kind == "file":
                payload = _common.read_input(path)
                if not opts.blob:
                    kind = "skeleton" if _common.is_skeleton(path, payload) else "file"
                    if kind == "file":
                        _refuse_regular_skeleton(path, payload)
            if kind == "skeleton":
                from ..skel import skeleton

                skel = skeleton.load(path)  # a bad header is reported before a bad key
                records.append(_sign_skeleton(opts, get_signer(), path, skel))
            else:
                records.append(_sign_file(opts, get_signer(), path, payload))
        except Error as exc:
            if key_error and exc is key_error[0]:
                raise  # the key itself is bad: nothing else can be signed
            records.append(_common.error_record(path, kind, exc))
            if not opts.json:
                print(f"bpfsign: {_common.cli_text(str(exc))}", file=sys.stderr)
            code = _common.worst(code, exc.exit_code)
    return _common.finish(opts, records, code)


def _refuse_regular_skeleton(path: str, payload: bytes) -> None:
    """A ``gen skeleton`` header (no -L) signed as bytes would verify but never load signed."""
    from ..skel import skeleton

    if b"\0" in payload or skeleton.sniff(payload.decode("latin-1")) != "skel":
        return
    raise skeleton.RegularSkeletonError(
        "a regular BPF skeleton (bpftool gen skeleton without -L): it embeds an ELF object and "
        "has no loader program for the kernel to verify; generate a light skeleton with "
        "`bpftool gen skeleton -L` and sign that, or pass --blob to sign the file as opaque "
        "bytes (FILE.p7s)",
        path=path,
    )


def _check_key_options(opts: SignOptions) -> None:
    from ..crypto.keysource import is_pkcs11_uri
    from ..errors import InputError

    if is_pkcs11_uri(opts.key):
        if opts.passphrase_file is not None or opts.passphrase_env is not None:
            raise InputError(
                "--passphrase-file/--passphrase-env are for key files; a token's PIN comes "
                "from the URI (pin-source=, pin-value=), --pin-env NAME, $BPFSIGN_PKCS11_PIN "
                "or a prompt"
            )
    else:
        if opts.pin_env is not None:
            raise InputError("--pin-env is for pkcs11: URIs; a key file takes --passphrase-env")
        if opts.cert is None:
            raise InputError("a key file needs its certificate: pass --cert FILE", path=opts.key)


def _load_signer(opts: SignOptions) -> Signer:
    from ..crypto.keysource import open_signer

    return open_signer(
        opts.key,
        opts.cert,
        passphrase_file=opts.passphrase_file,
        passphrase_env=opts.passphrase_env,
        insecure_key_permissions=opts.insecure_key_permissions,
        pin_env=opts.pin_env,
    )


def _sid(opts: SignOptions) -> Literal["skid", "issuer_serial"]:
    return "issuer_serial" if opts.sid == "issuer-serial" else "skid"


def _sign_file(opts: SignOptions, signer: Signer, path: str, payload: bytes) -> dict[str, Any]:
    from .._fileio import atomic_write
    from ..crypto import cms
    from ..crypto.verify import MAX_SIGNED_PAYLOAD
    from ..errors import InputError

    out = opts.output or path + ".p7s"
    if out.endswith(".h"):
        raise InputError(
            f"refusing to write a detached signature over {out!r}: a path ending in .h is a "
            "header, not a signature file (choose another -o)",
            path=path,
        )
    if len(payload) > MAX_SIGNED_PAYLOAD:
        raise InputError(
            f"E2BIG: the file is {len(payload)} bytes, over the kernel's {MAX_SIGNED_PAYLOAD}-"
            "byte limit for a signed payload; nothing was written",
            path=path,
        )
    signature = cms.sign(payload, signer, digest=opts.digest, sid=_sid(opts))
    atomic_write(out, signature, break_hardlinks=opts.break_hardlinks)
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


def _replaced(skel: Skeleton) -> dict[str, Any] | None:
    """What an already-signed header's signature is, so re-signing can say what it replaces."""
    if skel.signature is None:
        return None
    from ..crypto import cms
    from ..errors import Error
    from ..skel import scheme

    signer = "unreadable"
    try:
        infos = cms.parse_signed_data(skel.signature).signer_infos
        if infos:
            signer = f"key id {infos[0].key_id.hex()}"
    except Error:
        pass
    kind = "inloader" if scheme.audit(skel).hash_check is not None else "loadtime"
    return {"scheme": kind, "bytes": len(skel.signature), "signer": signer}


def _sign_skeleton(opts: SignOptions, signer: Signer, path: str, skel: Skeleton) -> dict[str, Any]:
    """Sign one header: in place, or to ``-o``. Returns the file's record."""
    from ..skel import scheme

    signed, report = scheme.sign(
        skel,
        signer,
        scheme=opts.scheme,
        digest=opts.digest,
        sid=_sid(opts),
        strict=opts.strict,
    )
    out = opts.output or path
    replaced = _replaced(skel)
    signed.save(out, break_hardlinks=opts.break_hardlinks)  # streamed: no second copy
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
        "notes": list(report.notes),
        "converted": None,
        "replaced": replaced,
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
        if replaced is not None:
            print(
                f"REPLACING the existing {replaced['scheme']} signature of {path} "
                f"({replaced['bytes']} bytes, signer {replaced['signer']})"
            )
        if report.converted is not None:
            print(f"CONVERTED {path}: {report.converted.describe()}")
        payload = "insns + data" if report.scheme == "loadtime" else "insns"
        print(
            f"SIGNED {path} -> {out} ({report.scheme}: {report.signature_size}-byte signature over "
            f"{report.payload_size} bytes ({payload}))"
        )
        for note in report.notes:
            print(f"  note: {_common.cli_text(note)}")
    return record
