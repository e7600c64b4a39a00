"""The README's post-hoc EMA and schedules examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(heading: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end], flags=re.S)


@pytest.mark.parametrize("heading", ["Post-hoc EMA", "Schedules"])
def test_readme_example_runs(heading: str) -> None:
    blocks = _blocks(heading)
    assert blocks, heading
    for code in blocks:
        exec(compile(code, f"README.md ({heading})", "exec"), {})
