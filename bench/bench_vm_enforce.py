"""What the admission policy costs a load on Linux 7.x.

Run on the host: ``.venv/bin/python bench/bench_vm_enforce.py [--rounds R] [--block B]
[--icount]``. It boots the 7.x guest (tools.vm) once and, inside it, measures the
per-load overhead as in real use: the policy is installed and pinned once and
``bpfsign audit --pin DIR --json`` runs as its reader (started, and caught up,
before timing); only the policy's link is created and closed between blocks.
BPF_PROG_LOAD of a 2-insn socket filter under the policy in audit mode (the
load is admitted and the whole policy runs: reads, decision, counters,
ring-buffer record) against no policy, and a signed light skeleton (loader +
its maps and programs) under an enforcing policy that pins the signing keyring
against no policy. Each round times a block with and a block without (order
alternating, warm-up loads discarded); the ratio reported is the median over R
rounds of the per-round ratio of block medians, with its quartiles, against
the target (1.03x at most; docs/policy.md §7). ``--icount`` boots the guest
with qemu's instruction counter as its clock (``-icount shift=0``: 1 ns per
guest instruction, one vCPU thread), which makes the guest's times a count of
guest instructions: deterministic, and immune to the host's load, but blind to
what TCG adds (code translation). (``bpfsign status`` against bpftool is
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
sys.path.insert(0, str(CHECKOUT))  # tools.vm (a test harness in the repo, not installed)
RET0 = bytes.fromhex("b7000000000000009500000000000000")
PIN = "/sys/fs/bpf/bpfsign-bench"
BPFSIGN = str(CHECKOUT / ".venv" / "bin" / "bpfsign")  # the console script users run


TARGET = 1.03


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


class _LivePolicy:
    """A pinned policy with ``bpfsign audit`` reading it; the link alone goes on and off."""

    def __init__(self, policy: object) -> None:
        from bpfsign.kernel import enforce as E
        from bpfsign.kernel.audit import RingBuffer

        if os.path.isdir(PIN):
            E.remove(PIN)
        self.inst = E.install(policy, PIN)  # type: ignore[arg-type]
        # the pinned link stays with its pin: take it out, and attach our own per block
        os.unlink(os.path.join(PIN, E.PIN_LINK))
        self.inst.fds.remove(self.inst.link)
        os.close(self.inst.link)
        self.link: int | None = None
        self.reader = subprocess.Popen(
            [BPFSIGN, "audit", "--pin", PIN, "--json"], stdout=subprocess.DEVNULL
        )
        # wait until the reader has started and caught up with a decision (admitted or not)
        from bpfsign.kernel import _sys as S

        self.on()
        ibuf = ctypes.create_string_buffer(RET0, len(RET0))
        lic = ctypes.create_string_buffer(b"GPL")
        attr = S.ProgLoadAttr(
            prog_type=S.PROG_TYPE_SOCKET_FILTER, insn_cnt=2, insns=S.addr(ibuf),
            license=S.addr(lic), prog_name=b"bench_ready",
        )  # fmt: skip
        fd, _ = S.bpf_errno(S.PROG_LOAD, attr, S.SIZE_PROG_LOAD)
        if fd >= 0:
            os.close(fd)
        self.off()
        with RingBuffer(self.inst.be, self.inst.events) as rb:
            deadline = time.monotonic() + 120
            while rb.pending():
                if time.monotonic() > deadline or self.reader.poll() is not None:
                    raise SystemExit("bench: the audit reader did not catch up")
                time.sleep(0.05)

    def on(self) -> None:
        from bpfsign.kernel import _sys as S

        self.link = self.inst.be.link_create(self.inst.prog, 0, S.BPF_LSM_MAC)

    def off(self) -> None:
        if self.link is not None:
            os.close(self.link)
            self.link = None

    def close(self) -> None:
        from bpfsign.kernel import enforce as E

        self.off()
        self.reader.terminate()
        self.reader.wait()
        self.inst.close()
        E.remove(PIN)


def _alternate(
    rounds: int, block: int, live: _LivePolicy, measure: Callable[[], float]
) -> tuple[float, float, float]:
    """(median, p25, p75) over rounds of the per-round ratio of block medians (with / without)."""
    ratios: list[float] = []
    for r in range(rounds):
        med = {}
        for state in (True, False) if r % 2 == 0 else (False, True):
            if state:
                live.on()
            try:
                for _ in range(3):
                    measure()  # warm-up
                med[state] = statistics.median(measure() for _ in range(block))
            finally:
                live.off()
        ratios.append(med[True] / med[False])
    q = statistics.quantiles(ratios, n=4)
    return statistics.median(ratios), q[0], q[2]


def _report(what: str, rounds: int, block: int, res: tuple[float, float, float]) -> None:
    verdict = "meets" if res[0] <= TARGET else "MISSES"
    print(
        f"BENCH per-load, {what}: ratio {res[0]:.3f} (p25 {res[1]:.3f}, p75 {res[2]:.3f}; "
        f"{rounds} rounds x {block} loads each way; {verdict} the target <= {TARGET})"
    )


def _guest(rounds: int, block: int) -> int:
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

    clock = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text()
    print(f"BENCH kernel {os.uname().release}; clocksource {clock.strip()}; ", end="")
    print(f"the audit reader runs throughout; {rounds} alternating rounds")
    live = _LivePolicy(Policy.from_options([0], audit=True))
    try:
        _report(
            "socket filter, audit policy vs none",
            rounds,
            block,
            _alternate(rounds, block, live, _load_once),
        )
    finally:
        live.close()
    live = _LivePolicy(Policy.from_options([0], [session]))
    try:
        _report(
            "signed skeleton (loader + children), enforcing policy vs none",
            max(2, rounds // 2),
            10,
            _alternate(max(2, rounds // 2), 10, live, skel_once),
        )
    finally:
        live.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=40, help="alternating policy/no-policy rounds (at least 2)"
    )
    parser.add_argument("--block", type=int, default=40, help="socket-filter loads per block")
    parser.add_argument(
        "--icount",
        action="store_true",
        help="guest clock = qemu's instruction counter (deterministic; see above)",
    )
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds: at least 2")
    if args.guest:
        return _guest(args.rounds, args.block)
    from tools.vm import Runner

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_guest.py
    from _guest import run_in_guest

    class IcountRunner(Runner):
        def _qemu_argv(self, accel: str, append: str) -> list[str]:
            argv = super()._qemu_argv(accel, append)
            i = argv.index("tcg,thread=multi")
            return [*argv[:i], "tcg,thread=single", "-icount", "shift=0,sleep=off", *argv[i + 1 :]]

    clock = "instruction count (-icount shift=0)" if args.icount else "wall time"
    return run_in_guest(
        __file__,
        ["--rounds", str(args.rounds), "--block", str(args.block)],
        make_runner=(lambda: IcountRunner(accel="tcg")) if args.icount else None,
        note=f"; guest clock {clock}",
    )


if __name__ == "__main__":
    sys.exit(main())
