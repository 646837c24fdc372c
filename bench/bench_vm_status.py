"""``bpfsign status --json`` against ``bpftool prog show --json`` with 1,000 programs, on Linux 7.x.

Run on the host: ``.venv/bin/python bench/bench_vm_status.py [--procs P] [--profile]``.
It boots the 7.x guest (tools.vm) once, loads 1,000 socket filters there and
times, as whole processes, P runs of each command interleaved (the order
alternates every round):

* ``python -c pass`` — the interpreter's own start-up, subtracted from
  bpfsign's time for the second ratio;
* ``bpftool prog show --json`` — the baseline;
* ``bpfsign status --json`` through its **own iterator** (no policy pinned: it
  loads an ``iter/bpf_prog`` program whose field offsets the kernel relocates
  (CO-RE, kernel/core_relo.py) and that prints the JSON rows itself, and reads
  it once);
* ``bpfsign status --json`` through the **pinned iterator** an audit-mode
  ``bpfsign enforce --pin`` left behind (reading it loads nothing; Python
  writes the JSON from its records).

Each bpfsign path is reported as a ratio to bpftool: whole process, with the
interpreter's start-up left out (the target: ≤ 1.0, one iterator read against
several syscalls per program). The command is ``.venv/bin/bpfsign``, the
launcher users run (bin/bpfsign: it imports nothing before bpfsign; pip's
generated entry-point wrapper imported ``re`` first, a large share of a bpftool
run under emulation). ``--profile`` also prints, for each path, ``-X importtime``'s
heaviest imports and a cProfile of one run.
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
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))  # tools.vm (a test harness in the repo, not installed)
RET0 = bytes.fromhex("b7000000000000009500000000000000")
BPFTOOL = "/usr/sbin/bpftool"
PIN = "/sys/fs/bpf/bpfsign-bench"
NOPIN = "/sys/fs/bpf/bpfsign-bench-none"  # never exists: status loads its own iterator
BPFSIGN = str(CHECKOUT / ".venv" / "bin" / "bpfsign")  # the console script users run
TARGET = 1.0
START = "python -c pass"
TOOL = "bpftool prog show --json"
OWN = "bpfsign status --json (own iterator)"
PINNED = "bpfsign status --json (pinned iterator)"


def _proc(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _load_many(n: int) -> list[int]:
    from bpfsign.kernel import _sys as S

    ibuf = ctypes.create_string_buffer(RET0, len(RET0))
    lic = ctypes.create_string_buffer(b"GPL")
    fds = []
    for i in range(n):
        attr = S.ProgLoadAttr(
            prog_type=S.PROG_TYPE_SOCKET_FILTER,
            insn_cnt=2,
            insns=S.addr(ibuf),
            license=S.addr(lic),
            prog_name=f"many{i}".encode(),
        )
        fds.append(S.bpf(S.PROG_LOAD, attr, S.SIZE_PROG_LOAD))
    return fds


def _profile(cmds: dict[str, list[str]]) -> None:
    for name in (OWN, PINNED):
        argv = cmds[name]
        r = subprocess.run(
            [sys.executable, "-X", "importtime", *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = []
        for line in r.stderr.splitlines():
            parts = line.removeprefix("import time:").split("|")
            if len(parts) == 3 and parts[0].strip().isdigit():
                rows.append((int(parts[0]), int(parts[1]), parts[2].rstrip()))
        total = sum(r[0] for r in rows)
        print(f"BENCH profile {name}: {len(rows)} imports, {total / 1000:.0f} ms self in all")
        for self_us, cum_us, mod in sorted(rows, reverse=True)[:12]:
            print(f"BENCH   import self {self_us / 1000:7.1f} ms cum {cum_us / 1000:7.1f} ms {mod}")
        prof = subprocess.run(
            [
                sys.executable,
                "-c",
                "import cProfile, pstats, sys, io\n"
                "sys.argv = ['bpfsign', *sys.argv[1:]]\n"
                "from bpfsign.cli import main\n"
                "p = cProfile.Profile(); p.enable()\n"
                "out = sys.stdout; sys.stdout = io.StringIO()\n"
                "main()\n"
                "p.disable(); sys.stdout = out\n"
                "pstats.Stats(p).sort_stats('cumulative').print_stats(18)\n",
                *argv[1:],
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in prof.stdout.splitlines():
            if line.strip():
                print(f"BENCH   {line}")


def _table(times: dict[str, list[float]], procs: int) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    tool, base = med[TOOL], med[START]
    print(
        f"BENCH medians over {procs} runs: "
        + "; ".join(f"{k} {v * 1000:.0f} ms" for k, v in med.items())
    )
    for k, v in times.items():
        q = statistics.quantiles(v, n=4)
        print(
            f"BENCH   {k}: min {min(v) * 1000:.0f} p25 {q[0] * 1000:.0f} p75 {q[2] * 1000:.0f} ms"
        )
    for name in (OWN, PINNED):
        m = med[name]
        net = (m - base) / tool
        print(
            f"BENCH 1000 progs, {name} / bpftool, of medians: whole process {m / tool:.3f}; "
            f"minus interpreter start-up {net:.3f}"
        )
        # each round ran every command once, back to back: ratios within a round cancel
        # the load drifting on a shared host; their median is the figure to go by
        rounds = list(zip(times[name], times[START], times[TOOL], strict=True))
        whole = statistics.median(x / t for x, _, t in rounds)
        paired = statistics.median((x - p) / t for x, p, t in rounds)
        print(
            f"BENCH 1000 progs, {name} / bpftool, paired per round (median of {len(rounds)}): "
            f"whole process {whole:.3f}; minus interpreter start-up {paired:.3f} "
            f"(target <= {TARGET:.1f}: {'met' if paired <= TARGET else 'MISSED'})"
        )
    print(f"BENCH start-up / bpftool {base / tool:.3f}")


def _guest(procs: int, profile: bool) -> int:
    from bpfsign.kernel import enforce as E
    from bpfsign.kernel.policy import Policy

    if E._mount_fstype("/sys/fs/bpf") != "bpf":
        subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"], check=True)
    print(f"BENCH kernel {os.uname().release}; {procs} interleaved runs of each command")
    fds = _load_many(1000)
    E.install(Policy.from_options([0], audit=True), PIN).close()
    cmds = {
        START: [sys.executable, "-c", "pass"],
        TOOL: [BPFTOOL, "prog", "show", "--json"],
        OWN: [BPFSIGN, "status", "--json", "--pin", NOPIN],
        PINNED: [BPFSIGN, "status", "--json", "--pin", PIN],
    }
    try:
        if profile:
            _profile(cmds)
        times: dict[str, list[float]] = {k: [] for k in cmds}
        for i in range(procs + 1):  # round 0 warms the page cache
            for name in list(cmds) if i % 2 == 0 else list(reversed(cmds)):
                dt = _proc(cmds[name])
                if i:
                    times[name].append(dt)
    finally:
        E.remove(PIN)
        for fd in fds:
            os.close(fd)
    _table(times, procs)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procs", type=int, default=11, help="process runs of each command")
    parser.add_argument("--profile", action="store_true", help="importtime and cProfile too")
    parser.add_argument("--guest", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guest:
        return _guest(args.procs, args.profile)
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/_guest.py
    from _guest import run_in_guest

    args_ = ["--procs", str(args.procs), *(["--profile"] if args.profile else [])]
    return run_in_guest(__file__, args_)


if __name__ == "__main__":
    sys.exit(main())
