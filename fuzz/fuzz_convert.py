"""Fuzz the -S → load-time conversion (find the in-loader check, remove it, fix jumps)."""

from __future__ import annotations

import dataclasses

from _harness import FIXTURES, checked, run

_BASE = None


def _base():  # type: ignore[no-untyped-def]
    global _BASE
    if _BASE is None:
        from bpfsign.skel import skeleton

        _BASE = skeleton.load(FIXTURES / "skel" / "counter.signed.lskel.h")
    return _BASE


def _convert(data: bytes) -> None:
    from bpfsign.skel import insn, scheme

    body = data[: len(data) // 8 * 8]
    if not body:
        return
    skel = dataclasses.replace(_base(), insns=body)
    converted, removed = scheme.convert_to_loadtime(skel)
    removed.describe()
    insn.decode(converted.insns, skel.endian)
    scheme.audit(converted)
    converted.render()


one_input = checked(_convert)

if __name__ == "__main__":
    run("fuzz_convert", default_max_len=8192)
