"""The repository's documentation stands alone: nothing points outside the repository, and
every relative Markdown link in the READMEs and docs/ leads to a file (and heading) that
exists.

A user who clones Fairway has only the repository; a link to `../shared/…` (or to any file
that was moved or deleted) is a dead end for them.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED_DIRS = ("docs", "deploy", "services", "libs", "tools", "tests")
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".json", ".txt"}
# Generated or local directories that are not part of the repository.
SKIPPED_PARTS = {".venv", ".git", "__pycache__", ".fairway", "node_modules", ".pytest_cache",
                 ".ruff_cache", ".mypy_cache", ".hypothesis", "build", "dist"}
# Built from pieces so that this file does not name what it forbids.
OUTSIDE_REFERENCES = ("../" + "shared", "shared" + "/docs")
LINKED_DOCS = ("README.md", "deploy/README.md", "docs/*.md", "tools/*/README.md")
# [text](target) (images too) and reference definitions `[text]: target`.
INLINE_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def text_files() -> list[Path]:
    files = [ROOT / "README.md"]
    for name in SCANNED_DIRS:
        for path in sorted((ROOT / name).rglob("*")):
            if (path.is_file() and path.suffix in TEXT_SUFFIXES
                    and not SKIPPED_PARTS.intersection(path.relative_to(ROOT).parts)):
                files.append(path)
    return files


def markdown_docs() -> list[Path]:
    return sorted({path for pattern in LINKED_DOCS for path in ROOT.glob(pattern)})


def relative_links(text: str) -> list[str]:
    """Link targets inside the repository (no scheme such as https: or mailto:; `#part` is a
    heading of the same file), outside code blocks and inline code."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)
    return [t for t in targets
            if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t)]


def anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text."""
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in HEADING.findall(FENCE.sub("", markdown))}


def test_the_scan_sees_the_repository():
    files = {path.relative_to(ROOT).as_posix() for path in text_files()}
    assert {"README.md", "docs/architecture.md", "deploy/README.md"} <= files
    assert any(f.startswith("services/") for f in files)


@pytest.mark.parametrize("path", text_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_file_points_outside_the_repository(path: Path):
    if path == Path(__file__).resolve():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    found = [ref for ref in OUTSIDE_REFERENCES if ref in text]
    assert not found, (f"{path.relative_to(ROOT)} mentions {found}: documents outside the "
                       "repository are not there for a user who clones it; link to docs/")


@pytest.mark.parametrize("path", markdown_docs(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_markdown_links_lead_to_files(path: Path):
    broken = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part.split("?", 1)[0]).resolve() if file_part else path
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(
                resolved.read_text(encoding="utf-8")):
            broken.append(target)
    assert not broken, f"{path.relative_to(ROOT)} links to missing files or headings: {broken}"


def test_anchors_are_githubs():
    text = "# The REST API\n## Fault injection (`--admin`)\n```\n# not a heading\n```\n"
    assert anchors(text) == {"the-rest-api", "fault-injection---admin"}


def test_link_finder_sees_links_and_skips_code():
    text = ("[a](docs/api.md) [b](https://example.com) [c](#anchor) [d](../x.md#part)\n"
            "`[e](not/a/link.md)`\n```\n[f](in/a/fence.md)\n```\n[g]: docs/kubesim.md\n")
    assert relative_links(text) == ["docs/api.md", "#anchor", "../x.md#part", "docs/kubesim.md"]
