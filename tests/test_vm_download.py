"""The guest runner's kernel download reports its progress (tools/vm/apt.py), with real apt."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from tools.vm import apt


def test_progress_reporter_notes_each_step_and_the_end_once() -> None:
    notes: list[str] = []
    report = apt.progress_reporter(200_000_000, notes.append, step=5.0)
    for percent in (0.0, 1.0, 4.9, 5.0, 7.0, 10.2, 50.0, 99.0, 100.0, 100.0):
        report(percent)
    assert notes == [
        "downloaded 5% (10.0 of 200.0 MB)",
        "downloaded 10% (20.4 of 200.0 MB)",
        "downloaded 50% (100.0 of 200.0 MB)",
        "downloaded 99% (198.0 of 200.0 MB)",
        "downloaded 100% (200.0 of 200.0 MB)",
    ]
    unknown: list[str] = []
    apt.progress_reporter(0, unknown.append)(100.0)
    assert unknown == ["downloaded 100%"]


@pytest.mark.slow
def test_a_real_download_reports_rising_percentages(tmp_path: Path) -> None:
    """apt-get's own status lines, read from APT::Status-Fd, throttled so it takes a few pulses."""
    shown = subprocess.run(
        ["apt-cache", "show", "--no-all-versions", "busybox"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    found = re.search(r"^Size: (\d+)$", shown, re.M)
    assert found is not None, shown
    size = int(found.group(1))
    notes: list[str] = []
    cmd = ["apt-get", "-q", "-o", "Acquire::http::Dl-Limit=300", "download", "busybox"]
    rc, err = apt.run_with_progress(cmd, tmp_path, apt.progress_reporter(size, notes.append))
    assert rc == 0, err
    (deb,) = tmp_path.glob("busybox_*.deb")
    assert deb.stat().st_size == size
    percents = []
    for note in notes:
        match = re.fullmatch(r"downloaded (\d+)% \(\d+\.\d of (\d+\.\d) MB\)", note)
        assert match is not None, note
        assert match.group(2) == f"{size / 1e6:.1f}"
        percents.append(int(match.group(1)))
    assert len(percents) >= 2, notes  # progress while it runs, not only at the end
    assert percents == sorted(set(percents)) and percents[-1] == 100


def test_a_failed_download_gives_apts_error(tmp_path: Path) -> None:
    notes: list[str] = []
    cmd = ["apt-get", "-q", "download", "bpfsign-no-such-package"]
    rc, err = apt.run_with_progress(cmd, tmp_path, apt.progress_reporter(0, notes.append))
    assert rc == 100
    assert "E: Unable to locate package bpfsign-no-such-package" in err
    assert notes == []
    assert list(tmp_path.iterdir()) == []
