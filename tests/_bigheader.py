"""Generate huge light-skeleton headers from a real fixture, for memory and time tests.

The fixture's ``opts_data`` literal is replaced by a bigger blob (the loader
program stays real), so the header parses, audits and signs as bpftool's
output would. Nothing this big is committed: tests write it to a temp dir.

Run as a script: ``python tests/_bigheader.py OUT DATA_BYTES [zeros|random|mixed]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "skel" / "counter.lskel.h"
#: The largest insns + data the kernel verifies in one signed load.
MAX_PAYLOAD = 16_777_215


def write_big_header(
    out: Path, data_size: int, fill: str = "zeros", *, base: Path = FIXTURE
) -> None:
    """Write ``base`` with an ``opts_data`` of ``data_size`` bytes to ``out``, streamed.

    ``fill``: ``zeros`` (every byte ``\\0``: the most escapes per file byte) or
    ``random`` (non-zero bytes, ``\\xNN``). Lines wrap as bpftool's print_hex wraps
    them (docs/lskel.md §3): 39 ``\\0`` or 19 ``\\xNN`` per line.
    """
    text = base.read_text()
    start = text.index('opts_data[] __attribute__((__aligned__(8))) = "')
    start = text.index('"', start)
    end = text.index('";', start) + 1
    per_line = 39 if fill == "zeros" else 19
    rnd = os.urandom(per_line * 1024).replace(b"\0", b"\1")
    with open(out, "w", encoding="ascii", newline="") as fh:
        fh.write(text[:start])
        fh.write('"\\\n')
        done = 0
        while done < data_size:
            n = min(per_line * 1024, data_size - done)
            chunk = bytes(n) if fill == "zeros" else rnd[:n]
            esc = ["\\0" if b == 0 else f"\\x{b:02x}" for b in chunk]
            lines = ["".join(esc[i : i + per_line]) for i in range(0, n, per_line)]
            if done:
                fh.write("\\\n")
            fh.write("\\\n".join(lines))
            done += n
        fh.write('"')
        fh.write(text[end:])


def insns_size(base: Path = FIXTURE) -> int:
    """The fixture's loader size in bytes, to size a blob right at the kernel's limit."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "src"))
    from bpfsign.skel import skeleton

    return len(skeleton.load(base).insns)


if __name__ == "__main__":
    write_big_header(
        Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "zeros"
    )
