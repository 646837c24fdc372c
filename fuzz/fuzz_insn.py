"""Fuzz the instruction decoder, disassembler and loader audit over arbitrary insns."""

from __future__ import annotations

import dataclasses

from _harness import FIXTURES, checked, run

_BASE = None


def _base():  # type: ignore[no-untyped-def]
    global _BASE
    if _BASE is None:
        from bpfsign.skel import skeleton

        _BASE = skeleton.load(FIXTURES / "skel" / "counter.lskel.h")
    return _BASE


def _audit(data: bytes) -> None:
    from bpfsign.skel import insn, scheme

    endian = "big" if data[:1] == b"B" else "little"
    body = data[1:]
    body = body[: len(body) // 8 * 8]
    insn.disasm(body, endian)
    insn.detect_endian(body)
    slots = insn.decode(body, endian)
    insn.targets(slots)
    if body:
        scheme.audit(dataclasses.replace(_base(), insns=body, endian=endian))


one_input = checked(_audit)

if __name__ == "__main__":
    run("fuzz_insn")
