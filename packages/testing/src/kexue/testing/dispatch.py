"""The backend contract every kernel-carrying kexue package's ``_dispatch.py`` keeps, as tests.

The runtime ``_dispatch.py`` exists once per package (each package installs alone); its tests are
written once, here. A package's ``tests/test_dispatch.py`` subclasses :class:`DispatchContract`
and names its module; pytest collects the inherited tests under the subclass::

    from kexue.testing.dispatch import DispatchContract
    from kexue.vq import _dispatch


    class TestDispatch(DispatchContract):
        module = _dispatch

The contract (CONTRIBUTING, "Adding a kernel"): ``_ENV`` is ``KEXUE_<PKG>_BACKEND`` and
``_PACKAGE`` the package; ``resolve_backend`` accepts ``"auto"``, ``"triton"``, ``"torch"``; the
variable overrides ``"auto"`` only; ``"auto"`` takes the reference on CPU (also under Triton's
interpreter); a forced ``"triton"`` that cannot run raises a ``RuntimeError`` naming the package.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import ClassVar

import pytest
import torch

__all__ = ["DispatchContract"]


class DispatchContract:
    """Base class of a package's dispatch tests; set ``module`` to the package's ``_dispatch``."""

    module: ClassVar[ModuleType]

    @property
    def package(self) -> str:
        """``kexue.<pkg>``: the package the module belongs to."""
        return self.module.__name__.rpartition(".")[0]

    @property
    def env(self) -> str:
        """``KEXUE_<PKG>_BACKEND``."""
        return f"KEXUE_{self.package.rpartition('.')[2].upper()}_BACKEND"

    @pytest.fixture(autouse=True)
    def _no_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv(self.env, raising=False)

    def test_the_environment_variable_is_the_package_one(self) -> None:
        assert self.module._ENV == self.env
        assert self.module._PACKAGE == self.package

    def test_auto_picks_the_reference_on_cpu_and_torch_is_always_torch(self) -> None:
        resolve = self.module.resolve_backend
        x = torch.zeros(2)
        assert resolve("auto", x) == "torch"
        assert resolve("auto") == "torch"  # no tensors: nothing to run on CUDA
        assert resolve("torch", x) == "torch"

    def test_unknown_names_raise(self, monkeypatch: pytest.MonkeyPatch) -> None:
        resolve = self.module.resolve_backend
        with pytest.raises(ValueError, match=r"backend must be one of .* got 'cuda'"):
            resolve("cuda")
        monkeypatch.setenv(self.env, "bogus")
        with pytest.raises(ValueError, match=f"{self.env} must be one of .* got 'bogus'"):
            resolve("auto")
        assert resolve("torch") == "torch"  # the variable only overrides "auto"

    def test_environment_overrides_auto_only(self, monkeypatch: pytest.MonkeyPatch) -> None:
        resolve = self.module.resolve_backend
        x = torch.zeros(2)
        monkeypatch.setenv(self.env, " Torch ")  # case and spaces are forgiven
        assert resolve("auto", x) == "torch"
        monkeypatch.setenv(self.env, "")  # empty means unset
        assert resolve("auto", x) == "torch"

    def test_forced_triton_without_triton_names_the_package(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        resolve = self.module.resolve_backend
        monkeypatch.setattr(self.module, "_triton_import_error", lambda: "ImportError: no triton")
        assert not self.module.triton_available()
        assert resolve("auto", torch.zeros(2)) == "torch"
        package = re.escape(self.package)
        with pytest.raises(RuntimeError, match=rf"^{package}: .*cannot be imported \(ImportError"):
            resolve("triton", torch.zeros(2))
        monkeypatch.setenv(self.env, "triton")  # the variable forces it just as the argument does
        with pytest.raises(RuntimeError, match="cannot be imported"):
            resolve("auto", torch.zeros(2))

    def test_forced_triton_on_cpu_needs_the_interpreter(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        resolve = self.module.resolve_backend
        monkeypatch.setattr(self.module, "_triton_import_error", lambda: None)
        x = torch.zeros(2)
        monkeypatch.delenv("TRITON_INTERPRET", raising=False)
        package = re.escape(self.package)
        with pytest.raises(RuntimeError, match=rf"^{package}: .*inputs are on cpu.*need CUDA"):
            resolve("triton", x)
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        assert resolve("triton", x) == "triton"
        assert resolve("auto", x) == "torch"  # the interpreter never makes "auto" pick Triton
