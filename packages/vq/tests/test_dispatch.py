"""Tests for kexue.vq._dispatch: the backend contract every kernel-carrying kexue package keeps,
written once in kexue-testing (`kexue.testing.dispatch.DispatchContract`)."""

from __future__ import annotations

from kexue.testing.dispatch import DispatchContract
from kexue.vq import _dispatch


class TestDispatch(DispatchContract):
    module = _dispatch
