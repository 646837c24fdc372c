"""Build and run the C reference loader (refload.c) for corpus headers (stdlib only).

Each header is compiled with gcc against the ``skel_internal.h`` of the libbpf
that matches the bpftool which made it:

* ``*.v71.*``: Debian 12's libbpf 1.1 (``/usr/include/bpf``) and 6.1 UAPI;
* ``*.v72.*``: sid's libbpf-dev 1.7 and linux-libc-dev 7.2.13 (unpacked by
  tests/fixtures/generate.sh --fetch-only);
* ``*.v73.*`` and the kernel's ``iterators.*`` copies: the 7.3.4 tree's
  ``tools/lib/bpf/skel_internal.h`` (copied into the corpus cache by
  tests/corpus/generate.sh --fetch-only).

Binaries are cached under ``tests/corpus/.refcache/`` (``$BPFSIGN_REFLOAD_CACHE``),
keyed by the SHA-256 of the header, refload.c and the compile command, so a
test run compiles each header once. The guest (read-only root) only runs them.

    python tests/corpus/refload.py --build-all          # compile every header
    python tests/corpus/refload.py --run-all -o ref.json  # load each once, save JSON
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKEL = HERE / "skel"
SOURCE = HERE / "refload.c"
CORPUS_CACHE = Path(os.environ.get("BPFSIGN_CORPUS_CACHE", HERE / ".cache"))
FIXTURE_CACHE = Path(os.environ.get("BPFSIGN_FIXTURE_CACHE", HERE.parent / "fixtures" / ".cache"))
REF_CACHE = Path(os.environ.get("BPFSIGN_REFLOAD_CACHE", HERE / ".refcache"))


def headers() -> list[Path]:
    """Every corpus header, sorted by name."""
    return sorted(SKEL.glob("*.lskel.h"))


def variant(header: Path) -> str:
    """'v71', 'v72', 'v73' or 'kernel' (the checked-in iterators copies)."""
    name = header.name
    for v in ("v71", "v72", "v73"):
        if f".{v}." in name:
            return v
    if name.startswith("iterators.kernel-"):
        return "kernel"
    raise ValueError(f"{name}: not a corpus header name")


def include_flags(v: str) -> list[str]:
    if v == "v71":
        return []  # /usr/include/bpf (libbpf 1.1) and /usr/include/linux (6.1)
    if v == "v72":
        lib = FIXTURE_CACHE / "root" / "libbpf-dev" / "usr" / "include"
        uapi = FIXTURE_CACHE / "root" / "linux-libc-dev" / "usr" / "include"
        return [f"-I{lib}", f"-I{uapi}", f"-I{uapi / 'x86_64-linux-gnu'}"]
    return [f"-I{CORPUS_CACHE / 'refinc' / 'v73'}"]


def _needed_dirs(v: str) -> list[Path]:
    if v == "v72":
        return [FIXTURE_CACHE / "root" / "libbpf-dev" / "usr" / "include" / "bpf"]
    if v in ("v73", "kernel"):
        return [CORPUS_CACHE / "refinc" / "v73" / "bpf"]
    return [Path("/usr/include/bpf")]


def members(text: str) -> tuple[str, list[str], list[str]]:
    """(skeleton struct name, map members, program members) of a header's text."""
    m = re.search(r"^struct (\w+) \{$", text, re.M)
    if m is None:
        raise ValueError("no skeleton struct")
    maps = re.findall(r"struct bpf_map_desc (\w+);", text)
    progs = re.findall(r"struct bpf_prog_desc (\w+);", text)
    return m.group(1), maps, progs


def compile_command(header: Path, out: Path, *, shared: bool = False) -> list[str]:
    text = header.read_text()
    name, maps, progs = members(text)
    v = variant(header)
    return [
        "gcc",
        "-O2",
        *(["-shared", "-fPIC"] if shared else []),
        "-Wall",
        "-Wno-unused-function",
        "-Wno-unused-variable",
        f'-DREF_HEADER="{header.resolve()}"',
        f"-DREF_NAME={name}",
        "-DREF_MAPS(X)=" + " ".join(f"X({n})" for n in maps),
        "-DREF_PROGS(X)=" + " ".join(f"X({n})" for n in progs),
        *(["-DREF_SIGNED"] if re.search(r"^\s*__s32 keyring_id;", text, re.M) else []),
        *include_flags(v),
        str(SOURCE),
        "-o",
        str(out),
    ]


def ensure_inputs(v: str) -> None:
    """Fetch the pinned libbpf headers this variant needs, once (network on first use)."""
    if all(d.is_dir() for d in _needed_dirs(v)):
        return
    if v == "v72":
        subprocess.run(
            ["bash", str(HERE.parent / "fixtures" / "generate.sh"), "--fetch-only"], check=True
        )
    else:
        subprocess.run(["bash", str(HERE / "generate.sh"), "--fetch-only"], check=True)


def binary(header: Path, *, build: bool = True, shared: bool = False) -> Path:
    """The compiled reference for ``header`` (compiled now unless cached).

    ``shared``: the same source as a shared library, whose ``ref_bench(n, ns*)`` a
    benchmark calls in its own process (see refload.c).
    """
    v = variant(header)
    key = hashlib.sha256()
    key.update(header.read_bytes())
    key.update(SOURCE.read_bytes())
    key.update(" ".join(compile_command(header, Path("x"), shared=shared)).encode())
    for d in _needed_dirs(v):
        if (d / "skel_internal.h").is_file():
            key.update((d / "skel_internal.h").read_bytes())
    out = REF_CACHE / f"{header.name}.{key.hexdigest()[:16]}{'.so' if shared else ''}"
    if out.is_file():
        return out
    if not build:
        raise FileNotFoundError(
            f"{out} is not built; run `python tests/corpus/refload.py --build-all` on the host first"
        )
    ensure_inputs(v)
    REF_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    r = subprocess.run(
        compile_command(header, tmp, shared=shared), capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"refload.c does not compile against {header.name}:\n{r.stderr}")
    tmp.replace(out)
    return out


def run(header: Path, *, build: bool = True) -> dict[str, object]:
    """Load ``header`` once with the C reference; its JSON result."""
    exe = binary(header, build=build)
    r = subprocess.run([str(exe)], capture_output=True, text=True, check=False, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"refload for {header.name} exited {r.returncode}: {r.stderr}")
    result: dict[str, object] = json.loads(r.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--build-all", action="store_true", help="compile the reference for every header"
    )
    ap.add_argument("--run-all", action="store_true", help="load every header once and print JSON")
    ap.add_argument("-o", "--output", help="write the --run-all JSON here")
    ap.add_argument("headers", nargs="*", help="headers to run (default with --run-all: all)")
    args = ap.parse_args(argv)
    chosen = [Path(h) for h in args.headers] or headers()
    if args.build_all:
        built = {binary(h) for h in chosen}
        if not args.headers:  # drop references of headers that changed since
            for stale in set(REF_CACHE.glob("*.lskel.h.*")) - built:
                stale.unlink()
    if args.run_all or args.headers:
        results = {h.name: run(h) for h in chosen}
        text = json.dumps(results, indent=1, sort_keys=True) + "\n"
        if args.output:
            Path(args.output).write_text(text)
        else:
            sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
