"""``bpfsign demo``: the whole sign-and-verify story on throwaway files, in seconds.

The demo is a list of steps sharing one ``DemoContext``, so later features
(skeleton signing, kernel loading) extend it by appending a ``DemoStep`` to
``STEPS``. A step returns a one-line summary, raises ``Skip`` when this machine
cannot do it, and raises anything else to fail the demo.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import Error, VerificationError, errno_name

EXAMPLE_PAYLOAD = "example.bin"
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
    trust: Any = None  # a bpfsign.trust.TrustStore holding the demo certificate
    #: anything later steps want to hand on (e.g. a signed skeleton's path)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoStep:
    title: str
    run: Callable[[DemoContext], str]


@dataclass(frozen=True)
class StepResult:
    title: str
    status: str  # "ok" | "skipped" | "failed"
    detail: str


def example_payload() -> bytes:
    """The bundled example: 12 BPF instructions (clang -target bpf) then a 4-byte data section."""
    return resources.files("bpfsign").joinpath("data", EXAMPLE_PAYLOAD).read_bytes()


def _describe_signer(result: Any) -> str:
    return (
        f"signer {result.signer_subject}, {result.digest_algorithm}, {result.signature_algorithm}"
    )


def step_keygen(ctx: DemoContext) -> str:
    from . import keys

    pair = keys.generate("rsa", subject=DEMO_SUBJECT, days=1)
    ctx.key_path = ctx.workdir / "demo.key"
    ctx.cert_path = ctx.workdir / "demo.crt"
    keys.write_key(ctx.key_path, pair.key)
    keys.write_cert(ctx.cert_path, pair.cert_der)
    ctx.signer = keys.FileSigner.from_files(ctx.key_path, ctx.cert_path)
    return (
        f"RSA-3072 key {ctx.key_path.name} (mode 0600) and self-signed certificate "
        f"{ctx.cert_path.name} (CN={DEMO_SUBJECT}, skid {pair.skid.hex()[:16]}...)"
    )


def step_sign(ctx: DemoContext) -> str:
    from . import cms
    from ._fileio import atomic_write

    payload = example_payload()
    ctx.payload_path = ctx.workdir / EXAMPLE_PAYLOAD
    atomic_write(ctx.payload_path, payload)
    signature = cms.sign(payload, ctx.signer)
    ctx.signature_path = ctx.workdir / (EXAMPLE_PAYLOAD + ".p7s")
    atomic_write(ctx.signature_path, signature)
    return (
        f"{EXAMPLE_PAYLOAD} ({len(payload)} bytes) -> {ctx.signature_path.name} "
        f"({len(signature)} bytes: detached CMS, sha256, signer by SKID, like bpftool)"
    )


def step_verify(ctx: DemoContext) -> str:
    from .trust import TrustStore
    from .verify import verify

    assert ctx.payload_path is not None and ctx.signature_path is not None
    assert ctx.cert_path is not None
    ctx.trust = TrustStore()
    ctx.trust.add_path(ctx.cert_path)
    result = verify(ctx.payload_path.read_bytes(), ctx.signature_path.read_bytes(), ctx.trust)
    return f"OK {EXAMPLE_PAYLOAD}: {_describe_signer(result)}"


def step_tamper(ctx: DemoContext) -> str:
    from .verify import verify

    assert ctx.payload_path is not None and ctx.signature_path is not None
    tampered = bytearray(ctx.payload_path.read_bytes())
    tampered[-1] ^= 0x01  # the data section's last byte: what an attacker would change
    try:
        verify(bytes(tampered), ctx.signature_path.read_bytes(), ctx.trust)
    except VerificationError as exc:
        if errno_name(exc.errno) != "EKEYREJECTED":
            raise DemoFailure(f"tampered payload gave {exc}, expected EKEYREJECTED") from exc
        return f"REJECTED {EXAMPLE_PAYLOAD} with one byte flipped: {exc}"
    raise DemoFailure("a tampered payload verified; the verifier is broken")


#: The demo, in order. Later features append their steps here.
STEPS: list[DemoStep] = [
    DemoStep("keygen", step_keygen),
    DemoStep("sign", step_sign),
    DemoStep("verify", step_verify),
    DemoStep("tamper", step_tamper),
    DemoStep("load", lambda ctx: __import__("bpfsign.loader").loader.demo_step(ctx)),
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
            try:
                result = StepResult(step.title, "ok", step.run(ctx))
            except Skip as exc:
                result = StepResult(step.title, "skipped", str(exc))
            except Error as exc:
                result = StepResult(step.title, "failed", str(exc))
            results.append(result)
            if report is not None:
                report(index, len(chosen), result)
            if result.status == "failed":
                break
    return results
