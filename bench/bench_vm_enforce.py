"""What the admission policy costs a load on Linux 7.x.

Run on the host: ``.venv/bin/python bench/bench_vm_enforce.py [--rounds R]``.
It boots the 7.x guest (tools.vm) once and, inside it, measures the per-load
overhead: BPF_PROG_LOAD of a 2-insn socket filter with the policy attached
(audit mode, so the load is admitted and the whole policy runs: reads,
decision, counters, ring-buffer record) against no policy, and a signed light
skeleton (loader + its maps and programs) under an enforcing policy that pins
the signing keyring against no policy; blocks of loads alternate between the
two states, R rounds. (``bpfsign status`` against bpftool is
bench/bench_vm_status.py.)

The guest runs under TCG, so only ratios are reported (docs/vm.md §8).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
RET0 = bytes.fromhex("b7000000000000009500000000000000")


def _load_once() -> float:
    from bpfsign.kernel import _sys as S

    ibuf = ctypes.create_string_buffer(RET0, len(RET0))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = S.ProgLoadAttr(
        prog_type=S.PROG_TYPE_SOCKET_FILTER,
        insn_cnt=2,
        insns=S.addr(ibuf),
        license=S.addr(lic),
        prog_name=b"bench",
    )
    t0 = time.perf_counter()
    fd, err = S.bpf_errno(S.PROG_LOAD, attr, S.SIZE_PROG_LOAD)
    dt = time.perf_counter() - t0
    if fd < 0:
        raise SystemExit(f"load failed: errno {err}")
    os.close(fd)
    return dt


def _alternate(
    rounds: int, block: int, install: Callable[[], object], measure: Callable[[], float]
) -> tuple[float, float, float, float]:
    """(median with, median without, p25 ratio, p75 ratio) over alternating blocks."""
    with_p: list[float] = []
    without: list[float] = []
    for r in range(rounds):
        for state in (True, False) if r % 2 == 0 else (False, True):
            inst = install() if state else None
            try:
                measure()  # warm-up
                times = [measure() for _ in range(block)]
            finally:
                if inst is not None:
                    inst.close()  # type: ignore[attr-defined]
            (with_p if state else without).extend(times)
    qa, qb = statistics.quantiles(with_p, n=4), statistics.quantiles(without, n=4)
    return (statistics.median(with_p), statistics.median(without), qa[0] / qb[0], qa[2] / qb[2])


def _guest(rounds: int) -> int:
    from bpfsign.crypto import keys
    from bpfsign.kernel import enforce as E
    from bpfsign.kernel import loader
    from bpfsign.kernel.backend import default_backend
    from bpfsign.kernel.policy import Policy
    from bpfsign.skel import scheme, skeleton

    if E._mount_fstype("/sys/fs/bpf") != "bpf":
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    be = default_backend()
    session = be.join_session_keyring()
    kd = CHECKOUT / "tests" / "fixtures" / "keys"
    signer = keys.FileSigner.from_files(
        kd / "TEST-ONLY-lskel-signing.key.pem", kd / "TEST-ONLY-lskel-signing.cert.pem"
    )
    be.add_key("asymmetric", "bpfsign-bench", signer.certificate, -3)
    path = CHECKOUT / "tests" / "fixtures" / "skel" / "sockfilter.lskel.h"
    text, _ = scheme.sign_skeleton(skeleton.load(path), signer, scheme="loadtime")
    signed = loader.Loader(skeleton.parse(text, path=str(path)), keyring_id=-3)

    def skel_once() -> float:
        t0 = time.perf_counter()
        signed.load().close()
        return time.perf_counter() - t0

    print(f"BENCH kernel {os.uname().release}; {rounds} alternating rounds")
    audit = _alternate(
        rounds, 50, lambda: E.install(Policy.from_options([0], audit=True)), _load_once
    )
    print(
        f"BENCH per-load, socket filter, audit policy vs none: median ratio "
        f"{audit[0] / audit[1]:.3f} (p25 {audit[2]:.3f}, p75 {audit[3]:.3f})"
    )
    enf = _alternate(rounds, 10, lambda: E.install(Policy.from_options([0], [session])), skel_once)
    print(
        f"BENCH per-load, signed skeleton (loader + children), enforcing policy vs none: "
        f"median ratio {enf[0] / enf[1]:.3f} (p25 {enf[2]:.3f}, p75 {enf[3]:.3f})"
    )

    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=6, help="alternating policy/no-policy rounds (at least 2)"
    )
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guest:
        return _guest(args.rounds)
    from tools.vm import Runner, VmError

    try:
        runner = Runner()
        kernel = runner.prepare()
    except VmError as exc:
        print(f"bench_vm_enforce: the VM cannot run here: {exc}", file=sys.stderr)
        return 2
    print(f"# {runner.qemu_version}; accel {runner.accel}; kernel {kernel.abi}")
    print("# ratios only: the guest is emulated (TCG), absolute times mean nothing")
    result = runner.run(
        [
            str(CHECKOUT / ".venv" / "bin" / "python"),
            str(Path(__file__).resolve()),
            "--guest",
            "--rounds",
            str(args.rounds),
        ],
        cwd=CHECKOUT,
        timeout=3000,
    )
    print(f"# {result.timings()}")
    for line in result.output:
        if line.startswith("BENCH "):
            print(line.removeprefix("BENCH "))
        elif result.rc != 0:
            print(line)
    return result.rc


if __name__ == "__main__":
    sys.exit(main())
