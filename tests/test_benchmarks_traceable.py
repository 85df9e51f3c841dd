"""Every figure in benchmarks/README.md can be traced to a file: what a reader checks before trusting a table.

Each section (a heading and the text up to the next heading) that holds a table with numbers must name a results
file under benchmarks/results/ that exists and parses as JSON; the README never falls back on "raw results not
kept". Sections without a table (a method and the command that will write its file) are free to name a file that
a rerun has yet to write. The check covers every section, whoever edits it.
"""
import json
import os
import re

import pytest

from conftest import ROOT

BENCH = os.path.join(ROOT, "benchmarks")
README = os.path.join(BENCH, "README.md")
RESULTS = os.path.join(BENCH, "results")
# A results file as the README names it: `results/NAME.json` or `benchmarks/results/DIR/NAME.json`.
RESULT_PATH = re.compile(r"(?:benchmarks/)?results/([\w./-]+?\.json)")
SEPARATOR = re.compile(r"^\|[\s:|-]+\|\s*$")


def _sections(text):
    """(heading, body lines) per heading, headings inside code fences ignored (a shell comment is no heading)."""
    sections, heading, body, fenced = [], "(top)", [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and re.match(r"^#{1,6} ", line):
            sections.append((heading, body))
            heading, body = line.lstrip("#").strip(), []
        else:
            body.append(line)
    sections.append((heading, body))
    return sections


def _has_numeric_table(lines):
    """True when a Markdown table below its separator row has a cell with a digit in it."""
    in_table = False
    for line in lines:
        if not line.startswith("|"):
            in_table = False
            continue
        if SEPARATOR.match(line):
            in_table = True
        elif in_table and re.search(r"\d", line):
            return True
    return False


def _table_sections():
    with open(README, encoding="utf-8") as f:
        return [(h, "\n".join(b)) for h, b in _sections(f.read()) if _has_numeric_table(b)]


def test_the_readme_never_says_raw_results_were_not_kept_for_a_table():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    lines = [n for n, line in enumerate(text.splitlines(), 1) if "raw results not kept" in line.lower()]
    assert not lines, f"benchmarks/README.md lines {lines} keep figures whose raw results are gone"


def test_the_readme_has_tables_to_check():
    # Guards the parser: the committed README has tables, so finding none means the check checks nothing.
    assert len(_table_sections()) >= 5


@pytest.mark.parametrize("heading,body", _table_sections(), ids=lambda v: v if len(v) < 80 else None)
def test_every_section_with_a_table_names_a_results_file_that_exists(heading, body):
    named = sorted(set(RESULT_PATH.findall(body)))
    assert named, f"section {heading!r} has a table but names no results/*.json"
    missing = [n for n in named if not os.path.isfile(os.path.join(RESULTS, n))]
    present = [n for n in named if n not in missing]
    assert present, f"section {heading!r}: none of its results files exists in benchmarks/results/: {missing}"
    for name in present:
        with open(os.path.join(RESULTS, name), encoding="utf-8") as f:
            data = json.load(f)
        assert data, f"benchmarks/results/{name} (named by {heading!r}) is empty"


def test_a_section_with_a_table_cites_no_missing_file_as_its_source():
    # "Results: `results/X.json`" under a table says the table was copied from X; X must be there.
    problems = []
    for heading, body in _table_sections():
        for line in re.findall(r"Results:[^\n]*(?:\n(?!\n)[^\n]*)*", body):
            for name in RESULT_PATH.findall(line):
                if not os.path.isfile(os.path.join(RESULTS, name)):
                    problems.append(f"{heading}: results/{name}")
    assert not problems, f"tables whose 'Results:' file is missing from benchmarks/results/: {problems}"
