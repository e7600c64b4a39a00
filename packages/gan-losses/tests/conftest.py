"""Ours only: the shared scalar fixtures in ``tests/_ganvalues.py``.

pytest's importlib mode does not put this folder on ``sys.path``, so it is added here for
``import _ganvalues`` (a name no other package uses), and to ``PYTHONPATH`` for the processes the
two-rank tests spawn (they import the test modules afresh).
"""

import os
import sys
from pathlib import Path

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
if _HERE not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (_HERE, os.environ.get("PYTHONPATH", "")) if p
    )
