"""The repository is self-contained: no pointer to files outside it, every docs/ citation resolves, the .rst parses."""

import io
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Written in pieces so that this file does not match its own patterns; it is scanned like every other.
OUTSIDE = [
    re.escape(".." + "/shared"),
    re.escape("/" + "work/"),
    re.escape("/" + "root/"),
    re.escape("/" + "home/"),
    re.escape("/" + "Users/"),
    r"\b" + "zdd-" + r"spec\b",
    re.escape("marathon-" + "api.md"),
    re.escape("marathon-lb-" + "behaviour.md"),
    re.escape("style" + ".md"),
    r"\bthe " + r"spec\b",
    r"\bspec" + r"'s\b",
    r"\bspec " + r"(section|fault|step)\b",
]
OUTSIDE_RE = re.compile("|".join(OUTSIDE), re.IGNORECASE)

CITATION_RE = re.compile(r"docs/([\w.-]+\.rst)(?:``)?(?:, '([^']+)')?(?:, (step|fault|item) (\d+))?")
UNDERLINE_RE = re.compile(r"^([=\-~^\"'`#*+:.])\1*$")


def tracked_files():
    """The repository's tracked text files, as (relative path, text)."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in listing.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        try:
            files.append((name, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue
    return files


def test_the_outside_patterns_catch_what_they_should():
    for text in ("see ../" "shared/x.md", "/" "work/shared/x", "as the " "spec says", "spec " "section 3",
                 "/" "home/me/notes"):
        assert OUTSIDE_RE.search(text), text
    for text in ("docs/behaviour.rst", "app.spec.get('x')", "/tmp/zdd-demo/app.json", "spec_view", "shared by"):
        assert not OUTSIDE_RE.search(text), text


def test_no_tracked_file_points_outside_the_repository():
    hits = [f"{name}:{number}: {line.strip()}"
            for name, text in tracked_files()
            for number, line in enumerate(text.splitlines(), start=1) if OUTSIDE_RE.search(line)]
    assert not hits, "pointers outside the repository (describe it in docs/ instead):\n" + "\n".join(hits)


def sections(text):
    """[(title, first line, end line)] of an .rst text; a section ends where one of its level or above begins."""
    lines = text.splitlines()
    titles, levels = [], []
    for index in range(len(lines) - 1):
        title, underline = lines[index].strip(), lines[index + 1]
        if title and not UNDERLINE_RE.match(title) and UNDERLINE_RE.match(underline) and len(underline) >= len(title):
            if underline[0] not in levels:
                levels.append(underline[0])
            titles.append((title, index, levels.index(underline[0])))
    found = []
    for position, (title, start, level) in enumerate(titles):
        end = next((other_start for _, other_start, other_level in titles[position + 1:] if other_level <= level),
                   len(lines))
        found.append((title, start, end))
    return found, lines


def test_sections_finds_titles_and_their_ends():
    found, _ = sections("Top\n===\n\nA\n-\n\nStep 1: x\n~~~~~~~~~\n\ntext\n\nB\n-\n")
    assert [(title, start, end) for title, start, end in found] == [
        ("Top", 0, 13), ("A", 3, 11), ("Step 1: x", 6, 11), ("B", 11, 13)]


def test_every_docs_citation_names_a_file_and_section_that_exist():
    problems = []
    for name, text in tracked_files():
        for match in CITATION_RE.finditer(text):
            doc, title, kind, number = match.groups()
            path = ROOT / "docs" / doc
            if not path.is_file():
                problems.append(f"{name}: docs/{doc} does not exist")
                continue
            if title is None:
                continue
            found, lines = sections(path.read_text(encoding="utf-8"))
            span = next(((start, end) for found_title, start, end in found if found_title == title), None)
            if span is None:
                problems.append(f"{name}: docs/{doc} has no section '{title}'")
                continue
            if kind is None:
                continue
            body = lines[span[0]:span[1]]
            wanted = re.compile(rf"^(Step {number}\b|{number}\. )", re.IGNORECASE)
            if not any(wanted.match(line.strip()) for line in body):
                problems.append(f"{name}: docs/{doc}, '{title}' has no {kind} {number}")
    assert not problems, "\n".join(problems)


def test_every_rst_file_parses_without_warnings():
    docutils_core = pytest.importorskip("docutils.core")
    names = [name for name, _ in tracked_files() if name.endswith(".rst")]
    assert any(name.startswith("docs/") for name in names)
    for name in names:
        warnings = io.StringIO()
        docutils_core.publish_doctree(
            (ROOT / name).read_text(encoding="utf-8"), source_path=str(ROOT / name),
            settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5,
                                "syntax_highlight": "none"})
        assert warnings.getvalue() == "", f"{name}:\n{warnings.getvalue()}"
