"""``bpfsign explain``: what a kernel would do with this load, check by check.

For a light skeleton it replays the loader's BPF_PROG_LOAD (as
``skel_internal.h`` issues it) through the rules engine; for any other FILE,
the signature path over FILE with FILE.p7s. It prints every check in the
kernel's order with what it compared, the deciding check with its errno and
verifier-log line, and the fix. ``--json`` gives one document of the same
shape for every outcome, errors included.
"""

from __future__ import annotations

import sys

from . import _common
from ._options import options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@options
class ExplainOptions:
    file: str
    trust: tuple[str, ...] = ()
    keyring: str | None = None
    kernel: str = "7.3"
    sig: str | None = None
    unsigned: bool = False
    json: bool = False


def register(sub: Any) -> None:
    from .verify import add_kernel, add_keyring

    p = sub.add_parser(
        "explain",
        help="show, check by check, what a kernel would do with a load",
        description="Replay the kernel's checks for FILE's BPF_PROG_LOAD (a light skeleton) or "
        "for FILE signed by FILE.p7s: each check in the kernel's order, what it compared, the "
        "deciding check with its errno and verifier-log line, and what to do about it.",
    )
    p.add_argument("file", metavar="FILE", help="a light skeleton header, or a signed file")
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="CERT_OR_DIR",
        help="trusted certificate(s) in the keyring the load names (repeatable)",
    )
    add_keyring(p)
    add_kernel(p)
    p.add_argument("--sig", metavar="FILE.p7s", help="the signature of a plain FILE")
    p.add_argument(
        "--unsigned", action="store_true", help="a skeleton's loader loaded without its signature"
    )
    _common.add_json(p)
    _common.set_command(p, ExplainOptions, handle)


def handle(opts: ExplainOptions) -> int:
    from ..errors import Error

    try:
        doc, text = _explain(opts)
    except Error as exc:
        doc = _document(opts, "file", error=exc)
        _common.emit(opts, doc, "")
        print(f"bpfsign: {_common.cli_text(str(exc))}", file=sys.stderr)
        return exc.exit_code
    _common.emit(opts, doc, text)
    return _common.EXIT_OK if doc["verdict"]["loads"] else _common.EXIT_REJECTED


def _document(opts: ExplainOptions, kind: str, *, profile: Any = None, load: Any = None,
              verdict: Any = None, error: Exception | None = None) -> dict[str, Any]:  # fmt: skip
    """The --json document: the same keys whatever happened."""
    err = None
    if error is not None:
        err = {"type": type(error).__name__, "message": getattr(error, "reason", str(error)),
               "path": getattr(error, "path", None), "line": getattr(error, "line", None)}  # fmt: skip
    return {
        "file": opts.file, "kind": kind,
        "kernel": profile.as_dict() if profile is not None else {"name": opts.kernel},
        "load": load, "steps": [s.as_dict() for s in verdict.steps] if verdict else [],
        "verdict": verdict.as_dict() if verdict else {
            "loads": False, "errno": None, "errno_name": None, "log": "", "hint": "",
            "check": None, "at_run_time": False},
        "signer": dict(verdict.signer._asdict()) if verdict and verdict.signer else None,
        "error": err,
    }  # fmt: skip


def _explain(opts: ExplainOptions) -> tuple[dict[str, Any], str]:
    from ..crypto.trust import TrustStore
    from ..errors import InputError
    from ..kernel import keyspec, profiles, rules

    profile = profiles.get(opts.kernel)
    keyring_id = -3 if opts.keyring is None else keyspec.keyring_id(opts.keyring)
    store = TrustStore(platform=keyring_id == 2)
    target: int | str = keyring_id if keyring_id in (0, 1, 2, -3, -4, -5) else "session"
    if keyring_id == rules.KEY_SPEC_BPF_KEYRING and profile.bpf_keyring:
        target = rules.bpf_keyring(store)
    for path in opts.trust:
        store.add_path(path, keyring=target)
    data = _common.read_input(opts.file)
    if _common.is_skeleton(opts.file, data):
        from ..skel import skeleton

        if opts.sig is not None:
            raise InputError("--sig does not apply to a light skeleton: its signature is inside "
                             "the header", path=opts.file)  # fmt: skip
        skel = skeleton.parse(data.decode("utf-8", "replace"), path=opts.file)
        load = rules.skeleton_load(skel, keyring_id=keyring_id, unsigned=opts.unsigned)
        verdict = rules.evaluate(load, profile, store)
        described = _describe_load(load)
        kind = "skeleton"
    else:
        if opts.unsigned:
            raise InputError("--unsigned applies to a light skeleton", path=opts.file)
        sig_path = opts.sig or opts.file + ".p7s"
        try:
            signature = _common.read_input(sig_path, what="signature", small=True)
        except InputError as exc:
            raise InputError(f"no signature: {exc.reason}; pass --sig", path=sig_path) from None
        verdict = rules.evaluate_blob(data, signature, profile, store, keyring_id)
        described = {"signed_bytes": len(data), "signature": sig_path,
                     "signature_size": len(signature), "keyring_id": keyring_id}  # fmt: skip
        kind = "file"
    doc = _document(opts, kind, profile=profile, load=described, verdict=verdict)
    return doc, _text(opts.file, kind, profile, described, verdict)


def _describe_load(load: Any) -> dict[str, Any]:
    return {
        "program": load.prog_name, "insns": len(load.insns) // 8,
        "signature_size": None if load.signature is None else len(load.signature),
        "keyring_id": load.keyring_id if load.signature is not None else None,
        "fd_array": [m.name or f"fd {m.fd}" for m in load.array],
        "fd_array_cnt": load.fd_array_cnt,
    }  # fmt: skip


def _text(path: str, kind: str, profile: Any, load: dict[str, Any], verdict: Any) -> str:
    lines = [f"explain {path}: kernel {profile.name} ({profile.provenance})"]
    if kind == "skeleton":
        signed = (f"signed ({load['signature_size']}-byte signature), keyring_id {load['keyring_id']}"
                  if load["signature_size"] is not None else "unsigned")  # fmt: skip
        lines.append(
            f"load: BPF_PROG_LOAD of {load['program']} ({load['insns']} insns), {signed}, "
            f"fd_array [{', '.join(load['fd_array'])}], fd_array_cnt {load['fd_array_cnt']}"
        )
    else:
        lines.append(
            f"load: {load['signed_bytes']} signed bytes with {load['signature']} "
            f"({load['signature_size']} bytes), keyring_id {load['keyring_id']}"
        )
    for i, step in enumerate(verdict.steps, 1):
        lines.append(f"  {i:>2}. {'ok  ' if step.ok else 'FAIL'}  {step.rule.title}: "
                     f"{_common.cli_text(step.compared)}")  # fmt: skip
    if verdict.loads:
        lines.append(f"verdict: LOADS: kernel {profile.name} would accept this load")
    else:
        step = verdict.failed
        from ..errors import errno_name

        when = (
            "at run time (the loader program returns it)"
            if verdict.at_run_time
            else "at BPF_PROG_LOAD"
        )
        lines.append(f"verdict: REJECTED {when}: {errno_name(step.errno)} ({step.errno}), "
                     f"check '{step.rule.id}'")  # fmt: skip
        lines.append(f"  log: {step.log}" if step.log else "  log: (empty)")
        lines.append(f"  fix: {_common.cli_text(step.hint)}")
    if not profile.measured:
        lines.append(f"note: kernel profile {profile.name} is {profile.provenance}")
    return "\n".join(lines)
