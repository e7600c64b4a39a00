"""Fixtures of the kexue-terms tests: the installed console script."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def kexue_terms() -> str:
    """Path of the ``kexue-terms`` console script next to this interpreter (skip without it)."""
    exe = shutil.which("kexue-terms", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("kexue-terms console script is not installed next to this interpreter")
    return exe
