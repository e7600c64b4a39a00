"""Tests for kexue.flows._dispatch: the backend contract every kernel-carrying kexue package keeps,
written once in kexue-testing (`kexue.testing.dispatch.DispatchContract`)."""

from __future__ import annotations

from kexue.flows import _dispatch
from kexue.testing.dispatch import DispatchContract


class TestDispatch(DispatchContract):
    module = _dispatch
