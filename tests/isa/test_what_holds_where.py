"""The reproducibility guide's "What holds where" table names real tests, and each cell says
"tested", "by construction" or "not promised"."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guides" / "reproducibility.md"
VERDICTS = ("tested", "by construction", "not promised")


def table_rows() -> list[list[str]]:
    text = GUIDE.read_text()
    lines = text[text.index("### What holds where"):].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| promise "))
    rows = []
    for line in lines[first:]:  # the first table of the section
        if not line.startswith("|"):
            break
        rows.append(line)
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert header == ["promise", "same machine", "other CPU ISA", "GPU", "guarded by"], header
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def test_every_cell_says_what_holds_and_every_row_names_a_test():
    rows = table_rows()
    assert len(rows) >= 20
    for promise, *places, guard in rows:
        for cell in places:
            assert cell.startswith(VERDICTS), f"{promise}: {cell!r} is not one of {VERDICTS}"
        assert "`tests/" in guard, f"{promise}: no test guards it"


def test_every_named_test_exists():
    for promise, *_, guard in table_rows():
        path = None
        for ref in re.findall(r"`(tests/[^`]+|::[^`]+)`", guard):
            if ref.startswith("tests/"):
                path, _, name = ref.partition("::")
            else:
                name = ref[2:]
            assert path is not None and (ROOT / path).exists(), f"{promise}: {ref} names no file"
            if name:
                function = re.sub(r"\[.*$", "", name)
                assert re.search(rf"^def {re.escape(function)}\(", (ROOT / path).read_text(), flags=re.M), (
                    f"{promise}: {path} has no test {function}")
