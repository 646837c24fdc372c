"""The loader's own logic, run everywhere: the same Loader over the kernel model backend."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bpfsign.crypto import keys, trust
from bpfsign.errors import InputError, KernelError, UnsupportedFeature
from bpfsign.kernel import loader
from bpfsign.kernel.backend import FEATURES
from bpfsign.kernel.model import KernelModel, ProgramsNotRun
from bpfsign.skel import scheme, skeleton

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SKEL = FIXTURES / "skel"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
UNSIGNED = sorted(
    name for name, ref in REFERENCE.items() if not ref["signed"] and ref["endian"] == "little"
)
SIGNED = sorted(
    name for name, ref in REFERENCE.items() if ref["signed"] and ref["endian"] == "little"
)


def _skel(name: str) -> skeleton.Skeleton:
    return skeleton.load(SKEL / name)


@pytest.fixture(scope="module")
def signed_counter() -> skeleton.Skeleton:
    signer = keys.FileSigner.from_files(
        FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem",
        FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem",
    )
    text, _ = scheme.sign_skeleton(
        skeleton.load(FIXTURES / "skel" / "counter.signed.lskel.h"), signer, scheme="loadtime"
    )
    return skeleton.parse(text)


def _model(profile: str = "7.3") -> KernelModel:
    store = trust.TrustStore()
    store.add_path(str(FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"), "session")
    return KernelModel(profile, store)


def test_the_model_answers_capabilities_from_its_profile() -> None:
    assert [_model("7.3").probe(f) for f in FEATURES] == [False, True, False]
    assert [_model("6.18").probe(f) for f in FEATURES] == [True, False, False]
    with pytest.raises(ValueError, match="unknown feature 'bogus'"):
        _model().probe("bogus")


def test_a_load_the_kernel_would_accept_stops_at_the_run(signed_counter: skeleton.Skeleton) -> None:
    model = _model()
    with pytest.raises(ProgramsNotRun) as info:
        loader.load(signed_counter, backend=model)
    assert str(info.value) == (
        "BPF_PROG_TEST_RUN in the kernel model is not supported here: everything before it "
        "passes, so the 7.3 kernel would load it; the model gives the kernel's verdict on loading "
        "and does not run programs (load on a real kernel to run the loader)"
    )
    assert model.open_fds == 0  # the loader map and program were closed


def test_a_refused_loader_load_names_the_step(signed_counter: skeleton.Skeleton) -> None:
    model = _model()
    with pytest.raises(KernelError) as info:
        loader.load(signed_counter, backend=model, keyring_id=1234)
    exc = info.value
    assert (exc.errno, exc.command, exc.step) == (errno.EINVAL, "BPF_PROG_LOAD", "load")
    assert exc.log == "cannot resolve signing keyring with keyring_id 1234"
    assert str(exc).splitlines()[0] == (
        "BPF_PROG_LOAD: EINVAL (22): counter: loader program load of __loader.prog failed: "
        "check keyring_id: it must be 0, 1, 2, -3 or the serial of an existing KEYRING"
    )
    assert model.open_fds == 0


def test_the_6_18_nosig_profile_has_no_signature_verification(
    signed_counter: skeleton.Skeleton,
) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        loader.load(signed_counter, backend=_model("6.18-nosig"))
    assert info.value.errno == errno.EOPNOTSUPP
    with pytest.raises(ProgramsNotRun):
        loader.load(signed_counter, backend=_model("6.18-nosig"), unsigned=True)
    # a 6.18 kernel that verifies checks the insns alone: a load-time signature fails there
    with pytest.raises(KernelError) as refused:
        loader.load(signed_counter, backend=_model("6.18"))
    assert (refused.value.errno, refused.value.log) == (errno.EKEYREJECTED, "")


def test_preflight_is_asked_of_the_backend() -> None:
    """A -S loader's in-loader check: a backend that runs programs and says the kernel lacks
    struct bpf_map.excl is refused before any command; the model answers it itself."""
    skel = skeleton.load(FIXTURES / "skel" / "counter.signed.lskel.h")

    class NoExcl(KernelModel):
        def probe(self, feature: str) -> bool | None:
            return {"inloader_loaders": False, "run_programs": True}.get(feature)

    with pytest.raises(UnsupportedFeature, match=r"^6\.18-style signed loader \(counter\)"):
        loader.Loader(skel, unsigned=True, backend=NoExcl("7.3"))
    with pytest.raises(KernelError) as info:  # the model itself: the verifier's EACCES
        loader.load(skel, unsigned=True, backend=_model("7.3"))
    assert (info.value.errno, info.value.step) == (errno.EACCES, "load")


def test_overrides_a_signed_mode_loader_ignores_are_refused_before_any_command() -> None:
    model = _model()
    with pytest.raises(
        InputError, match="cannot set max_entries of counts for counter: a signed-mode loader"
    ):
        loader.load(
            _skel("counter.signed.lskel.h"),
            unsigned=True,
            max_entries={"counts": 777},
            backend=model,
        )
    assert model.open_fds == 0


def test_fixture_lists_are_not_empty() -> None:
    assert len(UNSIGNED) >= 6 and len(SIGNED) >= 3
    assert {"globals.lskel.h", "hidden.lskel.h"} <= set(UNSIGNED)


def test_big_endian_loader_is_refused() -> None:
    with pytest.raises(UnsupportedFeature) as info:
        loader.load(_skel("sockfilter.bpfeb.lskel.h"), backend=_model())
    assert info.value.errno == errno.EINVAL  # the kernel's answer (C's loader: at PROG_LOAD)
    assert str(info.value) == (
        "big-endian loader (sockfilter) is not supported here: its instructions are for a "
        "big-endian kernel and this one is little-endian (its BPF_PROG_LOAD would fail with "
        "EINVAL); regenerate the skeleton for this target"
    )


def test_loader_request_fields_follow_the_scheme() -> None:
    plain = loader.Loader(_skel("counter.lskel.h"), backend=_model()).request
    assert (plain.fd_array_cnt, plain.hash_request, plain.signature, plain.excl_prog_hash) == (
        0,
        False,
        None,
        None,
    )
    skel = _skel("counter.signed.lskel.h")
    dropped = loader.Loader(skel, unsigned=True, backend=_model()).request
    assert (dropped.fd_array_cnt, dropped.hash_request, dropped.excl_prog_hash) == (
        0,
        True,
        skel.excl_hash,
    )
    converted, _ = scheme.convert_to_loadtime(skel)
    signed = skeleton.Skeleton(**{**converted.__dict__, "signature": b"\x30" * 16})
    req = loader.Loader(signed, keyring_id=1234, backend=_model()).request
    assert (req.fd_array_cnt, req.hash_request, req.keyring_id) == (1, False, 1234)


def test_load_lines_name_the_signing_state() -> None:
    from bpfsign.cli.load import load_lines

    info = {
        "signed": True,
        "skeleton_signed": True,
        "scheme": "loadtime",
        "maps": [],
        "progs": [],
        "links": [],
    }
    assert load_lines(info, "x", "x.h", [], None) == [
        "loaded x from x.h: signed, loadtime scheme",
        "released on exit (use --pin DIR to keep them)",
    ]
    info.update(signed=False, scheme="inloader")
    assert load_lines(info, "x", "x.h", ["/b/map_m"], "/b") == [
        "loaded x from x.h: unsigned (--unsigned: its signature was not sent), inloader scheme",
        "pinned 1 objects under /b",
        "  /b/map_m",
    ]


@pytest.mark.parametrize("n", ["199", "0"])
def test_bench_load_refuses_fewer_than_200_pairs(n: str) -> None:
    bench = Path(__file__).resolve().parent.parent / "bench" / "bench_load.py"
    run = subprocess.run(
        [sys.executable, str(bench), "--pairs", n],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == (
        f"bench_load.py: error: --pairs {n}: medians need at least 200 timed loads per "
        "side (the issue's floor)"
    )
    assert run.stdout == ""


def test_named_initial_values_name_the_skeleton_on_error() -> None:
    model = _model()
    with pytest.raises(InputError) as info:
        loader.load(_skel("counter.lskel.h"), initial_values={".data": {"hits": 1}}, backend=model)
    assert model.open_fds == 0
    assert str(info.value) == (
        f"{SKEL / 'counter.lskel.h'}: section data has no member 'hits' (it has: sample_every)"
    )


def test_the_loader_keyring_and_cli_see_only_the_backend_protocol() -> None:
    """No reach into the syscall layer: capabilities are asked, constants are public."""
    import ast

    src = Path(__file__).resolve().parent.parent / "src" / "bpfsign"
    files = [
        src / "kernel" / "loader.py",
        src / "kernel" / "keyring.py",
        *sorted((src / "cli").glob("*.py")),
    ]
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(a.name for a in node.names)]
                assert not any(n.endswith("_sys") for n in names), (path.name, names)
            if isinstance(node, ast.Name):
                assert node.id != "SyscallBackend", path.name
