"""Every fact the code cites lives in this repository: a docs citation names a real heading."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITE = re.compile(r"\bdocs/(\w+)\.md((?:\s*§\s*[\d.]+(?:\s*(?:,|and|/|-|\u2013)\s*§?\s*[\d.]+)*)?)")
SECTION = re.compile(r"[\d]+(?:\.[\d]+)*")


def headings(doc: Path) -> set[str]:
    found = set()
    for line in doc.read_text().splitlines():
        m = re.match(r"#{2,4}\s+(\d+(?:\.\d+)*)[.\s]", line)
        if m:
            found.add(m.group(1))
    return found


def citations() -> list[tuple[str, int, str, str]]:
    out = []
    for base in ("src", "tests", "bench", "examples", "tools", "fuzz"):
        for path in sorted((ROOT / base).rglob("*.py")):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                for m in CITE.finditer(line):
                    for section in SECTION.findall(m.group(2) or ""):
                        out.append(
                            (str(path.relative_to(ROOT)), lineno, m.group(1), section.rstrip("."))
                        )
                    if not m.group(2):
                        out.append((str(path.relative_to(ROOT)), lineno, m.group(1), ""))
    return out


def test_every_cited_doc_and_section_exists() -> None:
    cites = citations()
    assert len(cites) > 100, "the code cites its facts; the scan must find them"
    missing = []
    cache: dict[str, set[str]] = {}
    for where, lineno, name, section in cites:
        doc = ROOT / "docs" / f"{name}.md"
        if not doc.exists():
            missing.append(f"{where}:{lineno}: docs/{name}.md does not exist")
            continue
        have = cache.setdefault(name, headings(doc))
        if section and section not in have:
            missing.append(f"{where}:{lineno}: docs/{name}.md has no §{section}")
    assert missing == []


def test_no_citation_points_outside_the_repository() -> None:
    bad = []
    for base in ("src", "tests", "bench", "examples", "tools", "fuzz"):
        for path in (ROOT / base).rglob("*.py"):
            text = path.read_text()
            if "shared/spec" in text or re.search(r"(?<![\w/])(kernel|lskel|cms|vm)\.md\b", text):
                bad.append(str(path.relative_to(ROOT)))
    assert [b for b in bad if b != "tests/test_docs_citations.py"] == []
