"""``python -m tools.vm run [options] -- CMD…``: run CMD in the 7.x guest.

Prints the guest's output as it arrives, then a summary line on stderr, and
exits with CMD's exit status (or 3 when the guest could not be run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import VmError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.vm")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "boot the guest and run CMD in it"),
                       ("prepare", "fetch the kernel and build the initramfs only")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--kver", help="kernel ABI to use (default: env KVER, else newest that fits)"
        )
        p.add_argument("--suite", help="Debian suite (default: env SUITE, else trixie-backports)")
        if name == "run":
            p.add_argument(
                "--accel", choices=("tcg", "kvm"), help="default: env BPFSIGN_VM_ACCEL or tcg"
            )
            p.add_argument("--timeout", type=float, help="hard deadline in seconds (default 600)")
            p.add_argument("--append", help="extra kernel parameters, e.g. lsm=...")
            p.add_argument("--cwd", help="directory to run CMD in (default: the current one)")
            p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS…")
    args = parser.parse_args(argv)

    from .runner import Runner

    try:
        if args.command == "prepare":
            runner = Runner(kver=args.kver, suite=args.suite)
            kernel = runner.prepare()
            print(f"{kernel.abi}: {kernel.vmlinuz}")
            return 0
        cmd = list(args.cmd)
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            parser.error("run needs a command after --")
        runner = Runner(
            kver=args.kver, suite=args.suite, accel=args.accel, extra_append=args.append
        )
        result = runner.run(cmd, cwd=args.cwd, timeout=args.timeout,
                            on_line=lambda line: print(line, flush=True))  # fmt: skip
    except VmError as exc:
        print(f"bpfsign-vm: {exc}", file=sys.stderr)
        return 3
    print(f"bpfsign-vm: {result.header()}", file=sys.stderr)
    print(
        f"bpfsign-vm: {result.timings()}; exit status {result.rc}; log {result.log}",
        file=sys.stderr,
    )
    return result.rc


if __name__ == "__main__":
    sys.exit(main())
