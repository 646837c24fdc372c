"""`bpfsign verify` as a whole process against `openssl cms -verify` on the same files.

Run: .venv/bin/python bench/bench_verify_cli.py [--runs N] [--profile] [--src DIR]

Targets (issue 2): one file <= 1.3x one openssl run; 100 files in one
`bpfsign verify` call >= 20x faster than 100 openssl runs (= 100 x the median
of one run). Every command runs the venv's own interpreter (no shim): both
``python -m bpfsign`` and the console script, whose shebang is the venv python.

The commands are timed round-robin (one run of each per round, after warm-up
rounds) and reported as medians, so that load from other processes on a shared
host hits every command alike; the minimum is printed too.

Python runs with bytecode caching on, as in a real install: when the caller's
environment sets PYTHONDONTWRITEBYTECODE (the dev sessions do), the .pyc files
go to a throwaway PYTHONPYCACHEPREFIX instead, so the work tree stays clean and
no run pays for compiling source. ``--src DIR`` puts DIR first on PYTHONPATH,
to measure a candidate tree against the same baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
SCRIPT = REPO / ".venv" / "bin" / "bpfsign"
ONE_FILE_TARGET = 1.3
#: What any pyca-based verifier must import: the floor bpfsign's own code sits on.
PYCA_FLOOR = (
    "import cryptography.exceptions, cryptography.hazmat.primitives.hashes, "
    "cryptography.hazmat.primitives.asymmetric.rsa, cryptography.hazmat.primitives.asymmetric.padding"
)
BATCH_TARGET = 20.0
BATCH = 100
WARMUP_ROUNDS = 5


def bench_env(cache_dir: Path, src: str | None) -> dict[str, str]:
    env = dict(os.environ)
    if env.pop("PYTHONDONTWRITEBYTECODE", None) is not None:
        env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    if src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def run_once(argv: list[str], env: dict[str, str]) -> float:
    """Wall time of one run in ms (posix_spawn: no Python-side fork overhead)."""
    actions = [
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter() - start) * 1000
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"command failed ({status}): {subprocess.list2cmdline(argv)}")
    return elapsed


def round_robin(
    commands: dict[str, list[str]], runs: int, env: dict[str, str]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_no in range(WARMUP_ROUNDS + runs):
        for name, argv in commands.items():
            elapsed = run_once(argv, env)
            if round_no >= WARMUP_ROUNDS:
                times[name].append(elapsed)
    return times


def setup(work: Path) -> tuple[Path, list[Path]]:
    """A keygen'd RSA-3072 cert and BATCH 64 KiB payloads signed by openssl in the bpftool shape."""
    sys.path.insert(0, str(REPO / "src"))
    from bpfsign.crypto import keys

    pair = keys.generate("rsa", subject="bench")
    keys.write_key(work / "k.key", pair.key)
    keys.write_cert(work / "k.crt", pair.cert_der)
    files = []
    for i in range(BATCH):
        payload = work / f"p{i:03d}.bin"
        payload.write_bytes(os.urandom(64 * 1024))
        subprocess.run(
            ["openssl", "cms", "-sign", "-binary", "-noattr", "-nocerts", "-keyid",
             "-nosmimecap", "-md", "sha256", "-outform", "DER", "-in", str(payload),
             "-inkey", str(work / "k.key"), "-signer", str(work / "k.crt"),
             "-out", f"{payload}.p7s"],
            check=True,
        )  # fmt: skip
        files.append(payload)
    return work / "k.crt", files


def openssl_verify(cert: Path, payload: Path) -> list[str]:
    return ["/usr/bin/openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
            f"{payload}.p7s", "-content", str(payload), "-certfile", str(cert), "-nointern",
            "-noverify", "-out", "/dev/null"]  # fmt: skip


def profile(cert: Path, payload: Path, env: dict[str, str]) -> None:
    """Print the costliest imports of one `bpfsign verify` (python -X importtime)."""
    out = subprocess.run(
        [str(PYTHON), "-X", "importtime", "-m", "bpfsign", "verify", "--trust", str(cert),
         str(payload)],
        capture_output=True, text=True, check=True, env=env,
    ).stderr  # fmt: skip
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        rows.append((int(self_us), int(cumulative_us), name.strip()))
    print("\nstart-up imports, by self time (us; -X importtime inflates them):")
    for self_us, cumulative, name in sorted(rows, reverse=True)[:15]:
        print(f"  {self_us:>6} self {cumulative:>7} cumulative  {name}")
    print(f"  sum of self times: {sum(r[0] for r in rows) / 1000:.1f} ms over {len(rows)} modules")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="rounds (>= 30)")
    parser.add_argument("--profile", action="store_true", help="also print -X importtime")
    parser.add_argument("--src", help="directory put first on PYTHONPATH (a candidate tree)")
    args = parser.parse_args()
    if args.runs < 30:
        parser.error("--runs must be at least 30 for stable medians")
    with tempfile.TemporaryDirectory(prefix="bpfsign-bench-") as tmp:
        cert, files = setup(Path(tmp))
        one = files[0]
        env = bench_env(Path(tmp) / "pycache", args.src)
        verify = ["verify", "--trust", str(cert)]
        commands = {
            "python -c pass (interpreter floor)": [str(PYTHON), "-c", "pass"],
            "openssl cms -verify, 1 file (baseline)": openssl_verify(cert, one),
            "python + pyca imports (pyca floor)": [str(PYTHON), "-c", PYCA_FLOOR],
            "python -m bpfsign verify, 1 file": [str(PYTHON), "-m", "bpfsign", *verify, str(one)],
            "bpfsign verify (console script), 1 file": [str(SCRIPT), *verify, str(one)],
            f"bpfsign verify, {BATCH} files in one call": [str(SCRIPT), *verify,
                                                           *map(str, files)],
        }  # fmt: skip
        times = round_robin(commands, args.runs, env)
        med = {name: statistics.median(t) for name, t in times.items()}
        low = {name: min(t) for name, t in times.items()}
        names = list(commands)
        ossl = med[names[1]]
        print(f"bpfsign verify vs openssl cms -verify: 64 KiB payloads, RSA-3072, "
              f"{args.runs} round-robin rounds")  # fmt: skip
        print(f"{'command':<46} {'median ms':>9} {'min ms':>7} {'x openssl':>9}")
        for name in names:
            print(f"{name:<46} {med[name]:>9.1f} {low[name]:>7.1f} {med[name] / ossl:>8.2f}x")
        ossl_batch = ossl * BATCH
        print(f"{f'openssl cms -verify x {BATCH} (= {BATCH} x median)':<46} {ossl_batch:>9.1f}")
        single = {"python -m": med[names[3]], "console script": med[names[4]]}
        one_ratio = min(single.values()) / ossl
        batch_speedup = ossl_batch / med[names[5]]
        floor = med[names[2]]
        ok_one = one_ratio <= ONE_FILE_TARGET
        ok_batch = batch_speedup >= BATCH_TARGET
        print()
        print(f"one file: {single['python -m'] / ossl:.2f}x (python -m), "
              f"{single['console script'] / ossl:.2f}x (console script) openssl; "
              f"target <= {ONE_FILE_TARGET}x: {'PASS' if ok_one else 'FAIL'}")  # fmt: skip
        print(f"  pyca floor (interpreter + the pyca modules a verify needs, nothing of ours): "
              f"{floor / ossl:.2f}x openssl; bpfsign adds {min(single.values()) - floor:.1f} ms "
              f"above it")  # fmt: skip
        print(
            f"batch: {BATCH} files in one call {batch_speedup:.1f}x faster than {BATCH} "
            f"openssl runs; target >= {BATCH_TARGET:.0f}x: {'PASS' if ok_batch else 'FAIL'}"
        )
        if args.profile:
            profile(cert, one, env)
        return 0 if ok_one and ok_batch else 1


if __name__ == "__main__":
    sys.exit(main())
