"""``count_syncs``: the tagging tests count device→host syncs at the dispatcher.

``with count_syncs() as events: ...`` is :func:`kexue.testing.count_host_syncs` with
``dispatch=True``: it also sees boolean-mask indexing, ``masked_select`` and the syncs inside torch's
own functions (packing), which the Python-level ``host_syncs`` fixture of the other rooms does not.
With CUDA, the tests also count with ``torch.cuda.set_sync_debug_mode``. The counter itself (that it
sees every kind of sync) is tested once, in kexue-testing's ``tests/test_syncs.py``.
"""

from functools import partial

import pytest

from kexue.testing import count_host_syncs


@pytest.fixture
def count_syncs():
    """``with count_syncs() as events: ...`` records the would-be synchronisations."""
    return partial(count_host_syncs, dispatch=True)
