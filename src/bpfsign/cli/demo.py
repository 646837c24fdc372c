"""``bpfsign demo``: the whole sign-and-verify story on throwaway files, in seconds.

First a plain payload (keygen, sign, verify, tamper), then the bundled light
skeleton, a real bpftool ``-S`` header: inspect it, convert and sign it under
``loadtime``, verify it offline, reject a tampered copy, and load it, signed
where the kernel verifies signatures and otherwise unsigned with the reason.

The demo is a list of steps sharing one ``DemoContext``; a feature extends it
by appending a ``DemoStep`` to ``STEPS``. A step returns a one-line summary,
raises ``Skip`` when this machine cannot do it, and raises anything else to
fail the demo. Every file a step names is written through ``DemoContext.write``
(or ``kept``), so ``bpfsign demo --keep DIR`` leaves exactly those files, and the
user can re-run each verdict with ``bpfsign verify`` on them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .._fileio import atomic_write
from ..errors import Error, VerificationError, errno_name
from . import _common
from ._options import options

EXAMPLE_PAYLOAD = "example.bin"
#: The payload with one byte flipped, checked against the original's signature.
TAMPERED_PAYLOAD = "example.tampered.bin"
DEMO_SUBJECT = "bpfsign demo (throwaway)"


class Skip(Exception):
    """This step cannot run here; the message says why."""


class DemoFailure(Error):
    """A demo step did not show what it should have."""


@dataclass
class DemoContext:
    """What the steps share: the work directory and what earlier steps made."""

    workdir: Path
    key_path: Path | None = None
    cert_path: Path | None = None
    payload_path: Path | None = None
    signature_path: Path | None = None
    signer: Any = None  # a bpfsign.Signer
    trust: Any = None  # a bpfsign.crypto.trust.TrustStore holding the demo certificate
    #: anything later steps want to hand on (e.g. a signed skeleton's path)
    extra: dict[str, Any] = field(default_factory=dict)
    #: the files the steps wrote into ``workdir``, in order
    written: list[Path] = field(default_factory=list)

    def write(self, name: str, data: bytes) -> Path:
        """Write ``workdir/name`` (atomically) and note it as a demo file."""
        path = self.workdir / name
        atomic_write(path, data)
        return self.kept(path)

    def kept(self, path: Path) -> Path:
        """Note a file a step wrote itself (e.g. a key file with its own mode)."""
        self.written.append(path)
        return path


@dataclass(frozen=True)
class DemoStep:
    title: str
    run: Callable[[DemoContext], str]


@dataclass(frozen=True)
class StepResult:
    title: str
    status: str  # "ok" | "skipped" | "failed"
    detail: str
    files: tuple[str, ...] = ()  # the names of the files the step wrote


def example_payload() -> bytes:
    """The bundled example: 12 BPF instructions (clang -target bpf) then a 4-byte data section."""
    return resources.files("bpfsign").joinpath("data", EXAMPLE_PAYLOAD).read_bytes()


def _describe_signer(result: Any) -> str:
    return (
        f"signer {result.signer_subject}, {result.digest_algorithm}, {result.signature_algorithm}"
    )


def step_keygen(ctx: DemoContext) -> str:
    from ..crypto import keys

    pair = keys.generate("rsa", subject=DEMO_SUBJECT, days=1)
    ctx.key_path = ctx.workdir / "demo.key"
    ctx.cert_path = ctx.workdir / "demo.crt"
    keys.write_key(ctx.kept(ctx.key_path), pair.key)
    keys.write_cert(ctx.kept(ctx.cert_path), pair.cert_der)
    ctx.signer = keys.FileSigner.from_files(ctx.key_path, ctx.cert_path)
    return (
        f"RSA-3072 key {ctx.key_path.name} (mode 0600) and self-signed certificate "
        f"{ctx.cert_path.name} (CN={DEMO_SUBJECT}, skid {pair.skid.hex()[:16]}...)"
    )


def step_sign(ctx: DemoContext) -> str:
    from ..crypto import cms

    payload = example_payload()
    ctx.payload_path = ctx.write(EXAMPLE_PAYLOAD, payload)
    signature = cms.sign(payload, ctx.signer)
    ctx.signature_path = ctx.write(EXAMPLE_PAYLOAD + ".p7s", signature)
    return (
        f"{EXAMPLE_PAYLOAD} ({len(payload)} bytes) -> {ctx.signature_path.name} "
        f"({len(signature)} bytes: detached CMS, sha256, signer by SKID, like bpftool)"
    )


def step_verify(ctx: DemoContext) -> str:
    from ..crypto.trust import TrustStore
    from ..crypto.verify import verify

    assert ctx.payload_path is not None and ctx.signature_path is not None
    assert ctx.cert_path is not None
    ctx.trust = TrustStore()
    ctx.trust.add_path(ctx.cert_path)
    result = verify(ctx.payload_path.read_bytes(), ctx.signature_path.read_bytes(), ctx.trust)
    return f"OK {EXAMPLE_PAYLOAD}: {_describe_signer(result)}"


def step_tamper(ctx: DemoContext) -> str:
    from ..crypto.verify import verify

    assert ctx.payload_path is not None and ctx.signature_path is not None
    tampered = bytearray(ctx.payload_path.read_bytes())
    tampered[-1] ^= 0x01  # the data section's last byte: what an attacker would change
    path = ctx.write(TAMPERED_PAYLOAD, bytes(tampered))
    try:
        verify(path.read_bytes(), ctx.signature_path.read_bytes(), ctx.trust)
    except VerificationError as exc:
        if errno_name(exc.errno) != "EKEYREJECTED":
            raise DemoFailure(f"tampered payload gave {exc}, expected EKEYREJECTED") from exc
        return (
            f"REJECTED {TAMPERED_PAYLOAD} ({EXAMPLE_PAYLOAD} with its last byte flipped) "
            f"against {ctx.signature_path.name}: {exc}"
        )
    raise DemoFailure("a tampered payload verified; the verifier is broken")


# ------------------------------------------------------------ the light skeleton

#: The bundled light skeleton (bpftool 7.8 ``-S`` output; see bpfsign/data/README).
EXAMPLE_SKELETON = "example.lskel.h"
#: The signed-under-loadtime copy the demo writes into its work directory.
SIGNED_SKELETON = "example.loadtime.lskel.h"
#: That copy with one byte of its data blob flipped.
TAMPERED_SKELETON = "example.loadtime.tampered.lskel.h"
#: The keyring that holds the throwaway certificate for the signed load.
DEMO_KEYRING = "bpfsign-demo"


def example_skeleton_path() -> Path:
    """Where the bundled example skeleton is installed (a real file: it ships in the wheel)."""
    return Path(str(resources.files("bpfsign").joinpath("data", EXAMPLE_SKELETON)))


def step_inspect_skeleton(ctx: DemoContext) -> str:
    from ..skel import scheme, skeleton

    copy = ctx.write(EXAMPLE_SKELETON, example_skeleton_path().read_bytes())
    skel = skeleton.load(copy)
    audit = scheme.audit(skel)
    ctx.extra["example"] = skel
    check = audit.hash_check
    where = (
        ""
        if check is None
        else f", in-loader hash check at insns {check.start}..{check.start + check.length - 1}"
    )
    signed = "signed by bpftool" if skel.signature is not None else "unsigned"
    return (
        f"{EXAMPLE_SKELETON}: light skeleton {skel.name!r}, {skel.insn_count} insns, "
        f"{len(skel.data)} data bytes, maps {', '.join(m.name for m in skel.maps)}, "
        f"programs {', '.join(p.name for p in skel.progs)}; scheme {audit.scheme}{where}; "
        f"{audit.mode} mode ({'ignores' if audit.mode == 'signed' else 'honours'} ctx overrides); "
        f"{signed}"
    )


def step_sign_skeleton(ctx: DemoContext) -> str:
    from ..skel import scheme, skeleton

    skel = ctx.extra.get("example") or skeleton.load(example_skeleton_path())
    text, report = scheme.sign_skeleton(skel, ctx.signer, scheme="loadtime")
    out = ctx.kept(ctx.workdir / SIGNED_SKELETON)
    skeleton.save(text, out)
    signed = skeleton.load(out)
    ctx.extra["skeleton"] = str(out)
    ctx.extra["signed_skeleton"] = signed
    converted = (
        ""
        if report.converted is None
        else f"converted to loadtime: {report.converted.describe()}; "
    )
    return (
        f"{converted}signed insns || data ({report.payload_size} bytes) under loadtime -> "
        f"{out.name} (signature {report.signature_size} bytes, excl_prog_hash "
        f"{report.excl_hash.hex()[:16]}...)"
    )


def step_verify_skeleton(ctx: DemoContext) -> str:
    from ..kernel import offline

    signed = ctx.extra["signed_skeleton"]
    verdict = offline.verify_skeleton(signed, ctx.trust)
    return (
        f"OK {SIGNED_SKELETON}: {verdict.scheme} scheme, {verdict.payload_size} bytes signed, "
        f"excl_prog_hash = SHA-256(insns), {_describe_signer(verdict.signer)}"
    )


def step_tamper_skeleton(ctx: DemoContext) -> str:
    from ..kernel import offline
    from ..skel import skeleton

    signed = ctx.extra["signed_skeleton"]
    evil = bytearray(signed.data)
    evil[len(evil) // 2] ^= 0x01  # one byte of the metadata blob (map definitions, BTF, images)
    # the same header with only its data literal rewritten: a file `bpfsign verify` can check
    span = signed.layout.blobs["data"]
    text = (
        signed.source[: span.start]
        + skeleton.render_literal(bytes(evil))
        + signed.source[span.end :]
    )
    path = ctx.kept(ctx.workdir / TAMPERED_SKELETON)
    skeleton.save(text, path)
    tampered = skeleton.load(path)
    try:
        offline.verify_skeleton(tampered, ctx.trust)
    except VerificationError as exc:
        if errno_name(exc.errno) != "EKEYREJECTED":
            raise DemoFailure(f"tampered skeleton gave {exc}, expected EKEYREJECTED") from exc
        return (
            f"REJECTED {TAMPERED_SKELETON} ({SIGNED_SKELETON} with data byte "
            f"{len(evil) // 2} flipped): {exc}"
        )
    raise DemoFailure("a skeleton with tampered data verified; the verifier is broken")


def _signed_load_refusal() -> str | None:
    """Why this kernel cannot load the loadtime-signed skeleton signed (None: it can)."""
    from ..kernel import probes

    signing = probes.signed_prog_load()
    if signing.supported is not True:
        return signing.detail
    loadtime = probes.loadtime_verification()
    if loadtime.supported is False:
        return (
            f"{loadtime.detail}; a loadtime signature covers insns || data and cannot verify here"
        )
    return None


def _describe_loaded(info: dict[str, Any]) -> str:
    maps = ", ".join(f"{m['name']} (id {m['id']})" for m in info["maps"])
    progs = ", ".join(f"{p['name']} (id {p['id']})" for p in info["progs"])
    return f"maps {maps}; programs {progs}; released"


def step_load(ctx: DemoContext) -> str:
    """Load the loadtime-signed example: signed where the kernel verifies, else unsigned, saying why."""
    from ..kernel import keyring, loader, probes
    from ..kernel.backend import default_backend

    signed = ctx.extra.get("signed_skeleton")
    if signed is None:
        raise Skip("no signed example skeleton (the sign-skeleton step did not run)")
    usable = probes.bpf_usable()
    if not usable.supported:
        raise Skip(f"not loading: {usable.detail}")
    why_not = _signed_load_refusal()
    if why_not is None:
        assert ctx.cert_path is not None
        backend = default_backend()
        session = backend.keyring_id(loader.KEY_SPEC_SESSION_KEYRING)
        ring = backend.add_key("keyring", DEMO_KEYRING, None, session)  # always a new one
        try:
            keyring.add_certificate(
                ctx.cert_path.read_bytes(), keyring=ring, path=str(ctx.cert_path)
            )
            with loader.load(signed, keyring_id=ring, backend=backend) as loaded:
                info = loaded.describe()
        finally:
            keyring.remove_key(ring, keyring=session, backend=backend)
        ctx.extra["load"] = {"signed": loaded.signed, "keyring": ring, **info}
        return (
            f"loaded {SIGNED_SKELETON} SIGNED: the kernel verified its loadtime signature "
            f"with the throwaway certificate in a fresh keyring {DEMO_KEYRING!r} ({ring}, "
            f"removed again); {_describe_loaded(info)}"
        )
    with loader.load(signed, unsigned=True) as loaded:
        info = loaded.describe()
    ctx.extra["load"] = {"signed": loaded.signed, "keyring": None, **info}
    return (
        f"not loaded signed: {why_not}. Loaded the converted loader UNSIGNED instead (no "
        f"signature checked) to show it runs on this kernel: {_describe_loaded(info)}"
    )


#: The demo, in order. Later features append their steps here.
STEPS: list[DemoStep] = [
    DemoStep("keygen", step_keygen),
    DemoStep("sign", step_sign),
    DemoStep("verify", step_verify),
    DemoStep("tamper", step_tamper),
    DemoStep("inspect-skeleton", step_inspect_skeleton),
    DemoStep("sign-skeleton", step_sign_skeleton),
    DemoStep("verify-skeleton", step_verify_skeleton),
    DemoStep("tamper-skeleton", step_tamper_skeleton),
    DemoStep("load", step_load),
]


def run(
    steps: Sequence[DemoStep] | None = None,
    *,
    workdir: Path | None = None,
    report: Callable[[int, int, StepResult], None] | None = None,
) -> list[StepResult]:
    """Run the steps in a temp dir (or ``workdir``), stopping at the first failure."""
    chosen = list(STEPS if steps is None else steps)
    results: list[StepResult] = []
    with tempfile.TemporaryDirectory(prefix="bpfsign-demo-") as tmp:
        ctx = DemoContext(workdir=workdir or Path(tmp))
        for index, step in enumerate(chosen, 1):
            before = len(ctx.written)
            try:
                status, detail = "ok", step.run(ctx)
            except Skip as exc:
                status, detail = "skipped", str(exc)
            except Error as exc:
                status, detail = "failed", str(exc)
            files = tuple(p.name for p in ctx.written[before:])
            result = StepResult(step.title, status, detail, files)
            results.append(result)
            if report is not None:
                report(index, len(chosen), result)
            if result.status == "failed":
                break
    return results


# ------------------------------------------------------------------ the command


@options
class DemoOptions:
    keep: str | None = None
    json: bool = False


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="sign, verify and load bundled examples with a throwaway key",
        description="Make a throwaway key and certificate in a temporary directory; sign the "
        "bundled example payload and verify it offline; convert and sign the bundled bpftool -S "
        "light skeleton under the load-time scheme and verify it; show tampered copies "
        "rejected; load the skeleton if this kernel can (otherwise say why).",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="write the demo files to DIR (created if needed) and keep them",
    )
    _common.add_json(p)
    _common.set_command(p, DemoOptions, handle)


def handle(opts: DemoOptions) -> int:
    workdir = None
    if opts.keep:
        workdir = Path(opts.keep)
        workdir.mkdir(parents=True, exist_ok=True)

    def report(index: int, total: int, result: StepResult) -> None:
        if opts.json:
            return
        mark = {"ok": "", "skipped": "skipped: ", "failed": "FAILED: "}[result.status]
        print(f"[{index}/{total}] {result.title}: {mark}{_common.cli_text(result.detail)}")

    results = run(workdir=workdir, report=report)
    ok = all(r.status != "failed" for r in results)
    files = [name for r in results for name in r.files]
    obj = {
        "ok": ok,
        "workdir": str(workdir) if workdir else None,
        "files": files if workdir else [],
        "steps": [
            {"title": r.title, "status": r.status, "detail": r.detail, "files": list(r.files)}
            for r in results
        ],
    }
    if ok:
        text = "demo OK: signed, verified offline, and tampered copies rejected"
    else:
        text = "demo FAILED (see the step above)"
    if workdir:
        text += f"\nfiles kept in {workdir}: {', '.join(files)}"
    _common.emit(opts, obj, text)
    return _common.EXIT_OK if ok else _common.EXIT_REJECTED
