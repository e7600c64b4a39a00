"""Ours only: the shared invertibility / log-det checkers in ``tests/_flowcheck.py``.

Seeding, the hypothesis profile, ``TRITON_INTERPRET`` and ``run_ranks`` come from the kexue-testing
pytest plugin (``[test]`` extra). pytest's importlib mode does not put this folder on ``sys.path``,
so it is added here for ``import _flowcheck`` (a name no other package uses).
"""

import sys
from pathlib import Path

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
