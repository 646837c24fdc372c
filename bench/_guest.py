"""The host half of every guest benchmark: boot the Linux 7.x guest, run the bench's
own ``--guest`` half inside it, and pass its ``BENCH`` lines through.

The guest sees the checkout read-only over 9p, so ``src/`` is byte-compiled
first (or every guest run would compile it again, and that would be timed).
The guest is emulated (TCG): only ratios mean anything (docs/vm.md §8).
"""

from __future__ import annotations

import compileall
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

CHECKOUT = Path(__file__).resolve().parents[1]
if str(CHECKOUT) not in sys.path:
    sys.path.insert(0, str(CHECKOUT))  # tools.vm: a test harness in the repo, not installed

if TYPE_CHECKING:
    from tools.vm import Runner


def run_in_guest(
    script: str,
    guest_args: Sequence[str],
    *,
    make_runner: Callable[[], Runner] | None = None,
    boots: int = 1,
    note: str = "",
    timeout: float = 3000,
) -> int:
    """Run ``script --guest GUEST_ARGS`` in ``boots`` fresh guests; its exit status.

    Exit 2 with one line when the VM cannot run here. A failing guest run
    prints all of its output, not only the BENCH lines.
    """
    from tools.vm import Runner, VmError

    name = Path(script).stem
    compileall.compile_dir(str(CHECKOUT / "src"), quiet=1)
    try:
        runner = make_runner() if make_runner is not None else Runner()
        kernel = runner.prepare()
    except VmError as exc:
        print(f"{name}: the VM cannot run here: {exc}", file=sys.stderr)
        return 2
    print(f"# {runner.qemu_version}; accel {runner.accel}; kernel {kernel.abi}{note}")
    print("# ratios only: the guest is emulated (TCG), absolute times mean nothing")
    load1, load5, _ = os.getloadavg()
    print(f"# host load: {load1:.2f} {load5:.2f} (1, 5 min)")
    argv = [str(CHECKOUT / ".venv" / "bin" / "python"), str(Path(script).resolve()), "--guest"]
    rc = 0
    for boot in range(1, boots + 1):
        result = runner.run([*argv, *guest_args], cwd=CHECKOUT, timeout=timeout)
        print(f"# boot {boot}: {result.timings()}")
        for line in result.output:
            if line.startswith("BENCH "):
                print(line.removeprefix("BENCH "))
            elif result.rc != 0:
                print(line)
        rc = rc or result.rc
    return rc
