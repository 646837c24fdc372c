"""The loader's own logic, run everywhere: the same Loader over the kernel model backend."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bpfsign.crypto import keys, trust
from bpfsign.errors import KernelError, UnsupportedFeature
from bpfsign.kernel import loader
from bpfsign.kernel.backend import FEATURES
from bpfsign.kernel.model import KernelModel, ProgramsNotRun
from bpfsign.skel import scheme, skeleton

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="module")
def signed_counter() -> skeleton.Skeleton:
    signer = keys.FileSigner.from_files(
        FIXTURES / "keys" / "TEST-ONLY-lskel-signing.key.pem",
        FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem",
    )
    text, _ = scheme.sign_skeleton(skeleton.load(FIXTURES / "skel" / "counter.signed.lskel.h"),
                                   signer, scheme="loadtime")
    return skeleton.parse(text)


def _model(profile: str = "7.3") -> KernelModel:
    store = trust.TrustStore()
    store.add_path(str(FIXTURES / "keys" / "TEST-ONLY-lskel-signing.cert.pem"), "session")
    return KernelModel(profile, store)  # type: ignore[arg-type]


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


def test_the_6_18_profile_has_no_signature_verification(signed_counter: skeleton.Skeleton) -> None:
    with pytest.raises(UnsupportedFeature) as info:
        loader.load(signed_counter, backend=_model("6.18"))
    assert info.value.errno == errno.EOPNOTSUPP
    with pytest.raises(ProgramsNotRun):
        loader.load(signed_counter, backend=_model("6.18"), unsigned=True)


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
