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
    keyring: str | None = None
    kernel: str = "7.3"
    sig: str | None = None
    json: bool = False


def register(sub: Any) -> None:
    import argparse

    p = sub.add_parser(
        "verify",
        help="verify signatures offline with the kernel's rules",
        description="Verify each FILE against FILE.p7s (or --sig) offline, giving the verdict, "
        "errno and verifier-log line a kernel (--kernel) would. Many files verify in one run.",
    )
    p.add_argument(
        "--trust",
        action="append",
        required=True,
        metavar="CERT_OR_DIR",
        help="trusted certificate(s): PEM/DER file or directory (repeatable)",
    )
    add_keyring(p)
    p.add_argument("--keyring-id", dest="keyring", help=argparse.SUPPRESS)  # old spelling
    add_kernel(p)
    p.add_argument("--sig", metavar="FILE.p7s", help="signature file (only with one FILE)")
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="file to verify against FILE.p7s, or a light skeleton header (signature inside)",
    )
    _common.add_json(p)
    _common.set_command(p, VerifyOptions, handle)


def add_keyring(p: Any) -> None:
    """``--keyring``, as verify and explain spell it (bpfsign.kernel.keyspec parses it)."""
    p.add_argument(
        "--keyring",
        metavar="KEYRING",
        help="the loader's keyring_id: session (-3, the default), user, user-session, builtin "
        "(0), secondary (1), platform (2), bpf (-9) or a number. --trust certificates go into "
        "that keyring; other ids resolve as the kernel does (EINVAL or ENOKEY)",
    )


def add_kernel(p: Any) -> None:
    from ..kernel import profiles

    p.add_argument(
        "--kernel",
        default=profiles.DEFAULT,
        choices=profiles.names(),
        metavar="PROFILE",
        help=f"the kernel whose rules apply: {', '.join(profiles.names())} (auto: this "
        f"kernel, from its probes; default {profiles.DEFAULT})",
    )


# -- start-up fast path ------------------------------------------------------

_VALUE_OPTIONS = ("--trust", "--sig", "--keyring", "--keyring-id", "--kernel")


def parse_fast(argv: Sequence[str]) -> VerifyOptions | None:
    """Parse the plain ``verify`` arguments without argparse, or return None.

    Building the argparse tree costs more than a whole ``openssl cms -verify``
    run (gettext probes the locale for every subcommand), so the CLI entry
    tries this first for ``bpfsign verify ...``. It accepts only the exact
    spellings ``--trust X``, ``--sig X``, ``--keyring K``, ``--kernel P``,
    ``--json`` and file names; anything else (``--help``, ``--trust=X``,
    abbreviations, ``--``, an unknown profile) returns None, and argparse then
    parses or reports it. tests/test_cli.py checks that both parsers agree.
    """
    from ..kernel import profiles

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
            keyring = arg in ("--keyring", "--keyring-id")
            if value is None or (value.startswith("-") and not keyring):
                return None
            if arg == "--trust":
                trust.append(value)
            else:
                values["--keyring" if keyring else arg] = value
        elif arg.startswith("-"):
            return None
        else:
            files.append(arg)
    if not trust or not files:
        return None
    kernel = values.get("--kernel", profiles.DEFAULT)
    if kernel not in profiles.names():
        return None
    return VerifyOptions(
        trust=tuple(trust),
        files=tuple(files),
        keyring=values.get("--keyring"),
        kernel=kernel,
        sig=values.get("--sig"),
        json=as_json,
    )


# -- the command ----------------------------------------------------------------

#: every --json record has these keys, whatever the outcome (None/[] when not applicable)
RECORD_KEYS = (
    "file", "kind", "kernel", "ok", "verdict", "errno", "errno_name", "log", "check", "hint",
    "message", "error", "line", "signature", "scheme", "payload_bytes", "signer", "notes",
    "warnings",
)  # fmt: skip


def record(path: str, kind: str, kernel: str, **fields: Any) -> dict[str, Any]:
    """One FILE's --json record: the same keys for a verdict, a rejection and an error."""
    out: dict[str, Any] = dict.fromkeys(RECORD_KEYS)
    out.update(file=path, kind=kind, kernel=kernel, log="", hint="", message="", notes=[],
               warnings=[])  # fmt: skip
    out.update(fields)
    return out


class _Trust:
    """The run's trust store, built on first use and shared by files and skeletons."""

    #: keyring_ids whose keyring --trust certificates can be placed in; any other id is
    #: only resolved (EINVAL or ENOKEY, as the kernel answers).
    PLACEABLE = (0, 1, 2, -3, -4, -5)

    def __init__(self, opts: Any, keyring_id: int, profile: Any) -> None:
        self.opts = opts
        self.keyring_id = keyring_id
        self.profile = profile
        self.store: TrustStore | None = None

    def get(self) -> TrustStore:
        if self.store is None:
            from ..crypto.trust import TrustStore
            from ..kernel import rules

            keyring_id = self.keyring_id
            store = TrustStore(platform=keyring_id == 2)
            target: int | str = keyring_id if keyring_id in self.PLACEABLE else "session"
            if keyring_id == rules.KEY_SPEC_BPF_KEYRING and self.profile.bpf_keyring:
                target = rules.bpf_keyring(store)
            for path in self.opts.trust:
                store.add_path(path, keyring=target)
            if not self.opts.json:
                for warning in store.warnings:
                    print(f"bpfsign: warning: {warning}", file=sys.stderr)
            self.store = store
        return self.store


def handle(opts: VerifyOptions) -> int:
    """Verify every FILE; the exit code is the worst of their verdicts.

    Accepted and rejected files are reported on stdout, one line each (a
    rejection adds its kernel log line and the fix); under --json every file
    gets one record of the same shape (:data:`RECORD_KEYS`), errors included.
    """
    from ..errors import Error, InputError
    from ..kernel import keyspec, profiles

    profile = profiles.get(opts.kernel)
    kernel = profile.name
    try:
        keyring_id = -3 if opts.keyring is None else keyspec.keyring_id(opts.keyring)
    except InputError as exc:
        return _fail_all(opts, kernel, exc)
    if opts.sig is not None and len(opts.files) != 1:
        raise InputError("--sig needs exactly one FILE (without it, FILE.p7s is used)")
    if not profile.measured and not opts.json:
        print(f"bpfsign: note: kernel profile {kernel} is {profile.provenance}", file=sys.stderr)
    trust = _Trust(opts, keyring_id, profile)
    records: list[dict[str, Any]] = []
    code = _common.EXIT_OK
    for path in opts.files:
        kind = "skeleton" if _common.is_skeleton(path) else "file"
        sig_path = None
        try:
            if kind == "file":
                payload = _common.read_input(path)
                kind = "skeleton" if _common.is_skeleton(path, payload) else "file"
            if kind == "skeleton":
                rec = _verify_skeleton(opts, trust, path, keyring_id, profile)
            else:
                sig_path = opts.sig or path + ".p7s"
                try:
                    signature = _common.read_input(sig_path, what="signature", small=True)
                except InputError as exc:
                    raise InputError(
                        f"no signature: {exc.reason}; pass --sig or sign it with `bpfsign sign`",
                        path=sig_path,
                    ) from None
                rec = _verify_file(trust.get(), path, sig_path, payload, signature, keyring_id,
                                   profile)  # fmt: skip
        except Error as exc:
            if getattr(exc, "path", None) in opts.trust and path not in opts.trust:
                return _fail_all(opts, kernel, exc)  # the trust store itself is bad
            rec = _error(path, kind, kernel, exc, sig_path)
            if not opts.json:
                print(f"bpfsign: {_common.cli_text(str(exc))}", file=sys.stderr)
            code = _common.worst(code, exc.exit_code)
        else:
            if not rec["ok"]:
                code = _common.worst(code, _common.EXIT_REJECTED)
            if not opts.json:
                _print(rec)
        records.append(rec)
    if trust.store is not None and trust.store.warnings:
        for rec in records:  # under --json the trust warnings travel with each verdict
            rec["warnings"] = [*rec["warnings"], *trust.store.warnings]
    return _common.finish(opts, records, code)


def _error(
    path: str, kind: str, kernel: str, exc: Exception, sig_path: str | None
) -> dict[str, Any]:
    from ..errors import errno_name

    err = getattr(exc, "errno", None)
    return record(
        path, kind, kernel, ok=False, verdict="ERROR", error=type(exc).__name__,
        message=getattr(exc, "reason", str(exc)), line=getattr(exc, "line", None),
        errno=err, errno_name=None if err is None else errno_name(err), signature=sig_path,
    )  # fmt: skip


def _fail_all(opts: VerifyOptions, kernel: str, exc: Exception) -> int:
    """A run-wide input error (bad --trust, bad --keyring): every FILE gets the error record."""
    if opts.json:
        _common.finish(opts, [_error(p, "file", kernel, exc, None) for p in opts.files], 2)
    print(f"bpfsign: {_common.cli_text(str(exc))}", file=sys.stderr)
    return _common.EXIT_USAGE


def _verdict_fields(verdict: Any) -> dict[str, Any]:
    from ..errors import errno_name

    step = verdict.failed
    if step is None:
        return {"ok": True, "verdict": "OK"}
    return {
        "ok": False, "verdict": "REJECTED", "errno": step.errno,
        "errno_name": errno_name(step.errno), "log": step.log, "check": step.rule.id,
        "hint": _common.cli_text(step.hint), "message": _common.cli_text(step.compared),
    }  # fmt: skip


def _signer_fields(signer: Any) -> dict[str, Any] | None:
    if signer is None:
        return None
    fields: dict[str, Any] = dict(signer._asdict())
    return {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}


def _verify_file(trust: TrustStore, path: str, sig_path: str, payload: bytes, signature: bytes,
                 keyring_id: int, profile: Any) -> dict[str, Any]:  # fmt: skip
    from ..kernel import rules

    verdict = rules.evaluate_blob(payload, signature, profile, trust, keyring_id)
    signer = _signer_fields(verdict.signer)
    return record(path, "file", profile.name, signature=sig_path, signer=signer,
                  warnings=list(signer["warnings"]) if signer else [], **_verdict_fields(verdict))  # fmt: skip


def _verify_skeleton(opts: VerifyOptions, trust: _Trust, path: str, keyring_id: int,
                     profile: Any) -> dict[str, Any]:  # fmt: skip
    """One header's verdict on ``profile`` (its signature is inside it). Returns its record."""
    from ..errors import InputError
    from ..kernel import offline
    from ..skel import skeleton

    if opts.sig is not None:
        raise InputError(
            "--sig does not apply to a light skeleton: its signature is inside the header",
            path=path,
        )
    result = offline.check_skeleton(skeleton.load(path), trust.get(), kernel=profile,
                                    keyring_id=keyring_id)  # fmt: skip
    signer = _signer_fields(result.signer)
    return record(path, "skeleton", profile.name, scheme=result.scheme,
                  payload_bytes=result.payload_size, notes=list(result.notes), signer=signer,
                  warnings=list(signer["warnings"]) if signer else [],
                  **_verdict_fields(result.verdict))  # fmt: skip


def _print(rec: dict[str, Any]) -> None:
    """The human report of one FILE: OK or REJECTED, on stdout either way."""
    path, who = rec["file"], rec["signer"] or {}
    if rec["ok"]:
        if rec["kind"] == "skeleton":
            print(f"OK {path}: {rec['scheme']} scheme, kernel {rec['kernel']}, signer "
                  f"{who.get('signer_subject')}, {who.get('digest_algorithm')}, "
                  f"{who.get('key_description')}, keyring {who.get('keyring')}")  # fmt: skip
        else:
            print(f"OK {path}: signer {who.get('signer_subject')}, {who.get('digest_algorithm')}, "
                  f"{who.get('signature_algorithm')}")  # fmt: skip
        for note in rec["notes"]:
            print(f"  note: {note}")
        for warning in rec["warnings"]:
            print(f"bpfsign: warning: {path}: {_common.cli_text(warning)}", file=sys.stderr)
        return
    head = f"{rec['errno_name']} ({rec['errno']})"
    print(f"REJECTED {path}: kernel {rec['kernel']} would refuse it: {head}"
          + (f": {rec['log']}" if rec["log"] else ""))  # fmt: skip
    print(f"  why: {rec['message']}")
    if rec["hint"]:
        print(f"  fix: {rec['hint']}")
