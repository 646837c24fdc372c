"""``bpfsign verify``: the kernel's verdict on signed files and light skeletons, offline.

This is the benchmarked path (bench/bench_verify_cli.py, against ``openssl cms
-verify``): :func:`parse_fast` lets ``bpfsign verify`` skip argparse, and the
file path never imports cryptography.x509/serialization or crypto.keys.
"""

from __future__ import annotations

import sys

from . import _common
from ._options import options

TYPE_CHECKING = False  # argparse/typing only for the type checker (CLI start-up is timed)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ..crypto.trust import TrustStore


@options
class VerifyOptions:
    trust: tuple[str, ...]
    files: tuple[str, ...]
    keyring_id: int | None = None
    sig: str | None = None
    json: bool = False


def register(sub: Any) -> None:
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
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="file to verify against FILE.p7s, or a light skeleton header (signature inside)",
    )
    _common.add_json(p)
    _common.set_command(p, VerifyOptions, handle)


# -- start-up fast path ------------------------------------------------------

_VALUE_OPTIONS = ("--trust", "--sig", "--keyring-id")


def parse_fast(argv: Sequence[str]) -> VerifyOptions | None:
    """Parse the plain ``verify`` arguments without argparse, or return None.

    Building the argparse tree costs more than a whole ``openssl cms -verify``
    run (gettext probes the locale for every subcommand), so the CLI entry
    tries this first for ``bpfsign verify ...``. It accepts only the exact
    spellings ``--trust X``, ``--sig X``, ``--keyring-id N``, ``--json`` and
    file names; anything else (``--help``, ``--trust=X``, abbreviations, ``--``,
    a bad number) returns None, and argparse then parses or reports it.
    tests/test_cli.py checks that both parsers agree.
    """
    trust: list[str] = []
    files: list[str] = []
    values: dict[str, str] = {}
    as_json = False
    args = iter(argv)
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg in _VALUE_OPTIONS:
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
    return VerifyOptions(
        trust=tuple(trust),
        files=tuple(files),
        keyring_id=keyring_id,
        sig=values.get("--sig"),
        json=as_json,
    )


# -- the command ----------------------------------------------------------------


class _Trust:
    """The run's trust store, built on first use and shared by files and skeletons."""

    #: keyring_ids whose keyring --trust certificates can be placed in; any other id is
    #: only resolved (EINVAL or ENOKEY, as the kernel answers).
    PLACEABLE = (0, 1, 2, -3, -4, -5)

    def __init__(self, opts: VerifyOptions) -> None:
        self.opts = opts
        self.store: TrustStore | None = None

    def get(self) -> TrustStore:
        if self.store is None:
            from ..crypto.trust import TrustStore

            keyring_id = self.opts.keyring_id
            store = TrustStore(platform=keyring_id == 2)
            target = keyring_id if keyring_id in self.PLACEABLE else "session"
            for path in self.opts.trust:
                store.add_path(path, keyring=target)
            if not self.opts.json:
                for warning in store.warnings:
                    print(f"bpfsign: warning: {warning}", file=sys.stderr)
            self.store = store
        return self.store


def handle(opts: VerifyOptions) -> int:
    """Verify every FILE; the exit code is the worst of their verdicts."""
    from ..errors import Error, InputError, VerificationError

    if opts.sig is not None and len(opts.files) != 1:
        raise InputError("--sig needs exactly one FILE (without it, FILE.p7s is used)")
    trust = _Trust(opts)
    records: list[dict[str, Any]] = []
    code = _common.EXIT_OK
    for path in opts.files:
        kind = "skeleton" if _common.is_skeleton(path) else "file"
        try:
            if kind == "file":
                payload = _common.read_input(path)
                kind = "skeleton" if _common.is_skeleton(path, payload) else "file"
            if kind == "skeleton":
                records.append(_verify_skeleton(opts, trust, path))
                continue
            sig_path = opts.sig or path + ".p7s"
            try:
                signature = _common.read_input(sig_path)
            except InputError as exc:
                raise InputError(
                    f"no signature: {exc.reason}; pass --sig or sign it with `bpfsign sign`",
                    path=sig_path,
                ) from None
            records.append(_verify_file(opts, trust.get(), path, sig_path, payload, signature))
        except VerificationError as exc:
            record = _common.error_record(path, kind, exc)
            if kind == "file":  # a skeleton's signature is inside the header
                record["signature"] = opts.sig or path + ".p7s"
            records.append(record)
            if not opts.json:
                print(f"REJECTED {path}: {exc}", file=sys.stderr)
            code = _common.worst(code, _common.EXIT_REJECTED)
        except Error as exc:
            if getattr(exc, "path", None) in opts.trust and path not in opts.trust:
                raise  # the trust store itself is bad
            records.append(_common.error_record(path, kind, exc))
            if not opts.json:
                print(f"bpfsign: {exc}", file=sys.stderr)
            code = _common.worst(code, exc.exit_code)
    if trust.store is not None and trust.store.warnings:
        for record in records:  # under --json the trust warnings travel with each verdict
            record["warnings"] = [*record.get("warnings", []), *trust.store.warnings]
    return _common.finish(opts, records, code)


def _verify_file(
    opts: VerifyOptions,
    trust: TrustStore,
    path: str,
    sig_path: str,
    payload: bytes,
    signature: bytes,
) -> dict[str, Any]:
    from ..crypto.verify import verify

    if opts.keyring_id is None:
        result = verify(payload, signature, trust)
    else:
        result = verify(payload, signature, trust, keyring_id=opts.keyring_id)
    record = {"file": path, "kind": "file", "signature": sig_path, "ok": True, **result._asdict()}
    record["warnings"] = list(result.warnings)
    if not opts.json:
        print(
            f"OK {path}: signer {result.signer_subject}, {result.digest_algorithm}, "
            f"{result.signature_algorithm}"
        )
        for warning in result.warnings:
            print(f"bpfsign: warning: {path}: {warning}", file=sys.stderr)
    return record


def _signer_fields(signer: Any) -> dict[str, Any]:
    as_dict = getattr(signer, "_asdict", None)
    fields: dict[str, Any] = dict(as_dict()) if callable(as_dict) else {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def _verify_skeleton(opts: VerifyOptions, trust: _Trust, path: str) -> dict[str, Any]:
    """One header's verdict under its scheme (its signature is inside it). Returns its record."""
    from ..errors import InputError
    from ..skel import scheme, skeleton

    if opts.sig is not None:
        raise InputError(
            "--sig does not apply to a light skeleton: its signature is inside the header",
            path=path,
        )
    skel = skeleton.load(path)
    verdict = scheme.verify_skeleton(skel, trust.get(), keyring_id=opts.keyring_id)
    who = _signer_fields(verdict.signer)
    record: dict[str, Any] = {
        "file": path,
        "kind": "skeleton",
        "ok": True,
        "scheme": verdict.scheme,
        "payload_bytes": verdict.payload_size,
        "notes": list(verdict.notes),
        "signer": who,
        "warnings": [],
    }
    if not opts.json:
        print(
            f"OK {path}: {verdict.scheme} scheme, signer {who.get('signer_subject')}, "
            f"{who.get('digest_algorithm')}, {who.get('key_description')}, "
            f"keyring {who.get('keyring')}"
        )
        for note in verdict.notes:
            print(f"  note: {note}")
    return record
