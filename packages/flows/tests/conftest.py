"""What the suite shares with every kexue package comes from the kexue-testing pytest plugin.

kexue-testing (``[test]`` extra) sets ``TRITON_INTERPRET=1`` without CUDA before any kernel module is
imported, seeds the global RNGs before every test, loads the derandomised hypothesis profile and
provides the ``run_ranks`` fixture. The ``__main__`` blocks of the ``*_ddp`` tests import
``worker_main`` from here.
"""

import sys
from pathlib import Path

from kexue.testing import worker_main

__all__ = ["worker_main"]

# Shared invertibility / log-det checkers live in tests/_flowcheck.py (a name no other package
# uses). pytest's importlib mode does not put this folder on sys.path, so do it here.
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
