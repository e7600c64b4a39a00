"""kexue-testing: the pytest plugin and helpers shared by the kexue test suites (development only).

Installed, it registers itself with pytest (entry point ``pytest11``); the suites use its fixtures
(``run_ranks``, ``host_syncs``) without importing anything. The helpers below are for what a
fixture cannot do: the ``__main__`` block of a distributed test file calls :func:`worker_main` (its
worker opens :func:`gloo_group`), and a
test that counts several blocks separately uses :func:`count_host_syncs`; layout tests build a
package's import graph from its source with :mod:`kexue.testing.import_graph`; a kernel-carrying
package's ``tests/test_dispatch.py`` subclasses :class:`kexue.testing.dispatch.DispatchContract`.
"""

from .__about__ import __version__
from ._distributed import gloo_group, launch_ranks, worker_main
from ._seeding import HYPOTHESIS_PROFILE, load_hypothesis_profile, seed_everything
from ._syncs import HostSyncs, count_host_syncs

__all__ = [
    "HYPOTHESIS_PROFILE",
    "HostSyncs",
    "__version__",
    "count_host_syncs",
    "gloo_group",
    "launch_ranks",
    "load_hypothesis_profile",
    "seed_everything",
    "worker_main",
]
