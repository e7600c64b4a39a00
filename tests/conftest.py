"""The workspace tests import ``tools`` as the package it is run as (``python -m tools.demo``,
``python -m tools.bench.<...>``): with ``--import-mode=importlib`` pytest does not put the
repository root on ``sys.path``, so it is put there once, here, for every file in ``tests/``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
