"""The corpus checks, shared by tests/test_corpus.py, tests/vm/test_vm_corpus.py and
tests/corpus/report.py. Uses only bpfsign's public API (``import bpfsign``) and its
CLI (``python -m bpfsign``); the C side is refload.py.

    python tests/corpus/checks.py --load-all [-o FILE]   # load parity of every header,
                                                         # one JSON object (used in the guest)
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import refload  # noqa: E402

KEYS = HERE.parent / "fixtures" / "keys"
KEY = KEYS / "TEST-ONLY-lskel-signing.key.pem"
CERT = KEYS / "TEST-ONLY-lskel-signing.cert.pem"

HEADERS = refload.headers()


def kind(h: Path) -> str:
    """'v71', 'v72', 'v72.signed', 'v73', 'v73.signed' or 'kernel'."""
    v = refload.variant(h)
    return f"{v}.signed" if ".signed." in h.name else v


def program(h: Path) -> str:
    return h.name.split(".", 1)[0]


def is_signed(h: Path) -> bool:
    return ".signed." in h.name


def cli(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "bpfsign", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if check and r.returncode != 0:
        raise AssertionError(
            f"bpfsign {' '.join(map(str, args))}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        )
    return r


@cache
def inspect(h: Path) -> dict[str, Any]:
    r = cli("inspect", "--json", h, check=True)
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def _sign(paths: list[Path], outdir: Path) -> dict[str, Any]:
    """Copy ``paths`` into ``outdir`` and sign them all there (in place) in one run."""
    for p in paths:
        shutil.copyfile(p, outdir / p.name)
    r = cli("sign", "--json", "--key", KEY, "--cert", CERT, *(outdir / p.name for p in paths))
    try:
        docs = json.loads(r.stdout)
    except json.JSONDecodeError:
        raise AssertionError(
            f"bpfsign sign: exit {r.returncode}, no JSON\n{r.stdout}\n{r.stderr}"
        ) from None
    return {Path(d["file"]).name: {**d, "exit": r.returncode, "stderr": r.stderr} for d in docs}


@cache
def signed_outputs() -> tuple[Path, dict[str, Any]]:
    """Every corpus header signed by ``bpfsign sign`` (one run): (directory, per-file JSON)."""
    outdir = Path(tempfile.mkdtemp(prefix="bpfsign-corpus-signed-"))
    atexit.register(shutil.rmtree, outdir, ignore_errors=True)
    return outdir, _sign(HEADERS, outdir)


@cache
def verify(h: Path) -> dict[str, Any]:
    """``bpfsign verify --json`` for the kernel of the header's scheme: a bpftool 7.2 ``-S``
    header (the 6.18 scheme) is judged by the 6.18 rules (Linux 7.3 refuses it)."""
    kernel = "6.18" if kind(h) == "v72.signed" else "7.3"
    r = cli("verify", "--json", "--kernel", kernel, "--trust", CERT, h)
    docs = json.loads(r.stdout)
    return {**docs[0], "exit": r.returncode}


def counterpart(h: Path, k: str) -> Path:
    return h.with_name(f"{program(h)}.{k}.lskel.h")


# --- the static checks: each returns what is wrong (empty: the check passes) ----------


def check_inspect(h: Path) -> list[str]:
    """``bpfsign inspect`` works and names the scheme (the right one for a signed header)."""
    try:
        d = inspect(h)
    except AssertionError as exc:
        return [str(exc)]
    name, maps, progs = refload.members(h.read_text())
    bad = []
    if d["name"] != name:
        bad.append(f"name {d['name']!r}, header struct {name!r}")
    if [m["name"] for m in d["maps"]] != maps:
        bad.append(f"maps {[m['name'] for m in d['maps']]}, header {maps}")
    if [p["name"] for p in d["progs"]] != progs:
        bad.append(f"progs {[p['name'] for p in d['progs']]}, header {progs}")
    if d["signed"] is not is_signed(h):
        bad.append(f"signed {d['signed']}")
    want = {"v72.signed": ("inloader",), "v73.signed": ("loadtime",)}.get(
        kind(h), ("loadtime", "inloader")
    )
    if d["scheme"] not in want:
        bad.append(f"scheme {d['scheme']!r}, expected {' or '.join(want)}")
    if d["endian"] != ("big" if "big-endian" in h.name else "little"):
        bad.append(f"endian {d['endian']}")
    return bad


def check_verify(h: Path) -> list[str]:
    """A signed header verifies against the TEST-ONLY cert, under its scheme."""
    d = verify(h)
    if d["exit"] != 0 or d["ok"] is not True:
        return [f"verify exit {d['exit']}: {d.get('message') or d}"]
    want = "inloader" if kind(h) == "v72.signed" else "loadtime"
    bad = [] if d["scheme"] == want else [f"scheme {d['scheme']}, expected {want}"]
    if d["signer"]["signer_subject"] != "CN=bpfsign TEST-ONLY fixture key (do not trust)":
        bad.append(f"signer {d['signer']['signer_subject']}")
    return bad


def check_resign(h: Path) -> list[str]:
    """Re-signing a 7.3.4 ``-S`` header with the same key is byte-identical."""
    outdir, docs = signed_outputs()
    if docs[h.name]["ok"] is not True:
        return [f"sign failed: {docs[h.name]}"]
    return (
        []
        if (outdir / h.name).read_bytes() == h.read_bytes()
        else ["re-signed header differs from bpftool's"]
    )


def check_sign(h: Path) -> list[str]:
    """``bpfsign sign`` of an unsigned header works, and the result verifies (load-time)."""
    outdir, docs = signed_outputs()
    doc = docs[h.name]
    if doc["ok"] is not True:
        return [f"sign failed: {doc.get('message') or doc}"]
    if doc["scheme"] != "loadtime":
        return [f"signed under {doc['scheme']}"]
    v = verify(outdir / h.name)
    return (
        []
        if v["exit"] == 0 and v["ok"] is True and v["scheme"] == "loadtime"
        else [f"does not verify: {v}"]
    )


def check_conversion(h: Path) -> list[str]:
    """A 7.2.13 ``-S`` header converted by ``bpfsign sign`` has exactly the insns (and data,
    excl hash) of the 7.3.4 ``-S`` header of the same object."""
    outdir, docs = signed_outputs()
    doc = docs[h.name]
    if doc["ok"] is not True:
        return [f"sign failed: {doc.get('message') or doc}"]
    if not doc.get("converted") or doc["converted"]["count"] not in (28, 33):
        return [f"not converted: {doc.get('converted')}"]
    mine = inspect(outdir / h.name)
    theirs = inspect(counterpart(h, "v73.signed"))
    return [
        f"{k} differs from {counterpart(h, 'v73.signed').name}"
        for k in ("insns", "data", "excl_hash", "scheme")
        if mine[k] != theirs[k]
    ]


def applicable(h: Path) -> dict[str, bool]:
    """Which static checks apply to a header."""
    k = kind(h)
    return {
        "inspect": True,
        "verify": is_signed(h),
        "re-sign": k == "v73.signed",
        "sign": not is_signed(h),
        "conversion": k == "v72.signed",
    }


STATIC_CHECKS = {
    "inspect": check_inspect,
    "verify": check_verify,
    "re-sign": check_resign,
    "sign": check_sign,
    "conversion": check_conversion,
}


# --- load parity -----------------------------------------------------------------


def bpfsign_load(h: Path) -> dict[str, Any]:
    """Load with bpfsign (signed headers signed, session keyring) and describe, or the error."""
    import bpfsign

    try:
        loaded = bpfsign.load_skeleton(h)
    except bpfsign.Error as exc:
        return {
            "ok": False,
            "errno": getattr(exc, "errno", None),
            "error": type(exc).__name__,
            "step": getattr(exc, "command", None),
            "message": str(exc).splitlines()[0],
        }
    except OSError as exc:  # not a bpfsign.Error: names neither map nor step
        return {
            "ok": False,
            "errno": exc.errno,
            "error": f"raw {type(exc).__name__}",
            "step": None,
            "message": str(exc),
        }
    try:
        return {"ok": True, **loaded.describe()}
    finally:
        loaded.close()


MAP_FIELDS = ("kernel_name", "type", "key_size", "value_size", "max_entries")
PROG_FIELDS = ("kernel_name", "type", "tag")


def parity(c: dict[str, Any], py: dict[str, Any]) -> list[str]:
    """Differences between the C reference's load and bpfsign's (empty: they agree)."""
    if not c["ok"]:
        if py["ok"]:
            return [f"C fails ({c['step']}, errno {c['errno']}) but bpfsign loads"]
        if py["errno"] != c["errno"]:
            return [
                f"both fail, errno differs: C {c['errno']} ({c['step']}), bpfsign {py['errno']} "
                f"({py['error']}: {py['message']})"
            ]
        return []
    if not py["ok"]:
        return [f"C loads but bpfsign fails: {py['error']} errno {py['errno']}: {py['message']}"]
    diffs = []
    cmaps = {m["name"]: m for m in c["maps"]}
    pmaps = {m["name"]: m for m in py["maps"]}
    if sorted(cmaps) != sorted(pmaps):
        diffs.append(f"maps differ: C {sorted(cmaps)}, bpfsign {sorted(pmaps)}")
    for name in sorted(set(cmaps) & set(pmaps)):
        for f in MAP_FIELDS:
            if cmaps[name].get(f) != pmaps[name].get(f):
                diffs.append(
                    f"map {name}.{f}: C {cmaps[name].get(f)!r}, bpfsign {pmaps[name].get(f)!r}"
                )
    cprogs = {p["name"]: p for p in c["progs"]}
    pprogs = {p["name"]: p for p in py["progs"]}
    if sorted(cprogs) != sorted(pprogs):
        diffs.append(f"progs differ: C {sorted(cprogs)}, bpfsign {sorted(pprogs)}")
    for name in sorted(set(cprogs) & set(pprogs)):
        for f in PROG_FIELDS:
            if cprogs[name].get(f) != pprogs[name].get(f):
                diffs.append(
                    f"prog {name}.{f}: C {cprogs[name].get(f)!r}, bpfsign {pprogs[name].get(f)!r}"
                )
    return diffs


def load_pair(h: Path, *, build: bool = True) -> dict[str, Any]:
    c = refload.run(h, build=build)
    py = bpfsign_load(h)
    return {"c": c, "bpfsign": py, "diffs": parity(c, py)}


# --- triggered programs (through bpfsign, checked against the selftests) -----------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR_BPF, _NR_NANOSLEEP, _NR_KEYCTL, _BPF_PROG_TEST_RUN, _BPF_ITER_CREATE = 321, 35, 250, 10, 33


def prog_test_run(prog_fd: int) -> int:
    """BPF_PROG_TEST_RUN with no input (tracing/raw_tp programs); the program's retval."""
    attr = (ctypes.c_uint8 * 80)()
    ctypes.c_uint32.from_buffer(attr, 0).value = prog_fd
    if _libc.syscall(_NR_BPF, _BPF_PROG_TEST_RUN, attr, 80) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ctypes.c_uint32.from_buffer(attr, 8).value


def nanosleep_syscall() -> None:
    ts = (ctypes.c_long * 2)(0, 1000)
    _libc.syscall(_NR_NANOSLEEP, ts, None)


def trigger_atomics(h: Path) -> None:
    """prog_tests/atomics.c: test_run raw_tp programs with bss.pid = getpid()."""
    import bpfsign

    with bpfsign.load_skeleton(h) as sk:
        sk.bss.pid = os.getpid()
        for p in ("add", "sub", "xchg", "cmpxchg"):
            assert prog_test_run(sk.prog_fd(p)) == 0, p
        assert (sk.data.add64_value, sk.bss.add64_result) == (3, 1)
        assert (sk.data.add32_value, sk.bss.add32_result) == (3, 1)
        assert (sk.bss.add_stack_value_copy, sk.bss.add_stack_result) == (3, 1)
        assert sk.data.add_noreturn_value == 3
        assert (sk.data.sub64_value, sk.bss.sub64_result) == (-1, 1)
        assert (sk.data.sub32_value, sk.bss.sub32_result) == (-1, 1)
        assert sk.data.sub_noreturn_value == -1
        assert (sk.data.xchg64_value, sk.bss.xchg64_result) == (2, 1)
        assert (sk.data.xchg32_value, sk.bss.xchg32_result) == (2, 1)
        assert (
            sk.data.cmpxchg64_value,
            sk.bss.cmpxchg64_result_fail,
            sk.bss.cmpxchg64_result_succeed,
        ) == (2, 1, 1)
        assert (
            sk.data.cmpxchg32_value,
            sk.bss.cmpxchg32_result_fail,
            sk.bss.cmpxchg32_result_succeed,
        ) == (2, 1, 1)


def trigger_fentry_fexit(h: Path) -> None:
    """prog_tests/fentry_test.c, fexit_test.c: attach all, test_run test1, every result is 1."""
    import bpfsign

    size = next(m["initial_value_bytes"] for m in inspect(h)["maps"] if m["name"] == "bss")
    with bpfsign.load_skeleton(h) as sk:
        sk.attach()
        assert prog_test_run(sk.prog_fd("test1")) == 0
        results = list(sk.globals("bss")[:size].cast("Q"))
        assert len(results) >= 8 and results == [1] * len(results), results


def trigger_trace_printk(h: Path) -> None:
    """prog_tests/trace_printk.c: fentry on sys_nanosleep; bpf_trace_printk ran and wrote."""
    import bpfsign

    with bpfsign.load_skeleton(h) as sk:
        sk.attach()
        nanosleep_syscall()
        assert sk.bss.trace_printk_ran >= 1
        assert sk.bss.trace_printk_ret > 0


def read_iterator(link_fd: int) -> str:
    """BPF_ITER_CREATE on an iter link, read to the end."""
    attr = (ctypes.c_uint32 * 2)(link_fd, 0)
    fd = _libc.syscall(_NR_BPF, _BPF_ITER_CREATE, attr, 8)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def trigger_iterators(h: Path) -> None:
    """kernel/bpf/preload: the bpf_map and bpf_prog iterators list the skeleton's own
    map and programs (what /sys/fs/bpf/maps.debug and progs.debug show)."""
    import bpfsign

    with bpfsign.load_skeleton(h) as sk:
        links = sk.attach()
        maps = read_iterator(links["dump_bpf_map"])
        progs = read_iterator(links["dump_bpf_prog"])
        map_id = next(m["id"] for m in sk.describe()["maps"] if m["name"] == "rodata")
    assert maps.startswith("  id name             max_entries  cur_entries\n"), maps[:200]
    assert any(
        ln.split()[:3] == [str(map_id), "iterator.rodata", "1"] for ln in maps.splitlines()
    ), maps
    assert progs.startswith("  id name             attached\n"), progs[:200]
    names = {ln.split()[1] for ln in progs.splitlines()[1:] if len(ln.split()) > 1}
    assert {"dump_bpf_map", "dump_bpf_prog"} <= names, progs


TRIGGERS = {
    "atomics": trigger_atomics,
    "fentry_test": trigger_fentry_fexit,
    "fexit_test": trigger_fentry_fexit,
    "trace_printk": trigger_trace_printk,
}
TRIGGER_CASES = [
    (p, HERE / "skel" / f"{p}.{k}.lskel.h")
    for p in TRIGGERS
    for k in ("v71", "v72", "v73", "v73.signed")
]
TRIGGERS["iterators"] = trigger_iterators
TRIGGER_CASES.append(("iterators", HERE / "skel" / "iterators.kernel-little-endian.lskel.h"))


def trust_test_cert_in_session() -> None:
    """Join a fresh session keyring (keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)), which
    later children inherit, and add the TEST-ONLY cert to it with ``bpfsign keyring add``:
    the C reference and bpfsign (keyring_id -3) then both verify against it."""
    if _libc.syscall(_NR_KEYCTL, 1, None) < 0:
        raise OSError(ctypes.get_errno(), "keyctl(KEYCTL_JOIN_SESSION_KEYRING)")
    cli("keyring", "add", CERT, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--load-all", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="only run prebuilt references (guest)")
    ap.add_argument(
        "--keyring-cert",
        action="store_true",
        help="first add the TEST-ONLY cert to the session keyring (bpfsign keyring add)",
    )
    ap.add_argument("-o", "--output")
    args = ap.parse_args(argv)
    if not args.load_all:
        ap.error("nothing to do")
    if args.keyring_cert:
        trust_test_cert_in_session()
    res = {
        "kernel": os.uname().release,
        "results": {h.name: load_pair(h, build=not args.no_build) for h in HEADERS},
    }
    text = json.dumps(res, indent=1, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
