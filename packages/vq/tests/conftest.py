"""What the suite shares with every kexue package comes from the kexue-testing pytest plugin.

kexue-testing (``[test]`` extra) sets ``TRITON_INTERPRET=1`` without CUDA before any kernel module is
imported, seeds the global RNGs before every test, loads the derandomised hypothesis profile and
provides the ``run_ranks`` fixture. The ``__main__`` blocks of the ``*_ddp`` tests import
``worker_main`` from here (the tests folder is ``sys.path[0]`` in a rank process).
"""

from kexue.testing import worker_main

__all__ = ["worker_main"]
