"""Tests for kexue.flows._dispatch: the backend rules every kernel-carrying kexue package shares."""

from __future__ import annotations

import pytest
import torch

from kexue.flows import _dispatch
from kexue.flows._dispatch import resolve_backend

ENV = "KEXUE_FLOWS_BACKEND"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def test_the_environment_variable_is_the_package_one() -> None:
    assert _dispatch._ENV == ENV
    assert _dispatch._PACKAGE == "kexue.flows"


def test_auto_picks_the_reference_on_cpu_and_torch_is_always_torch() -> None:
    x = torch.zeros(2)
    assert resolve_backend("auto", x) == "torch"
    assert resolve_backend("auto") == "torch"  # no tensors: nothing to run on CUDA
    assert resolve_backend("torch", x) == "torch"


def test_unknown_names_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"backend must be one of .* got 'cuda'"):
        resolve_backend("cuda")
    monkeypatch.setenv(ENV, "bogus")
    with pytest.raises(ValueError, match=f"{ENV} must be one of .* got 'bogus'"):
        resolve_backend("auto")
    assert resolve_backend("torch") == "torch"  # the variable only overrides "auto"


def test_environment_overrides_auto_only(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(2)
    monkeypatch.setenv(ENV, " Torch ")  # case and spaces are forgiven
    assert resolve_backend("auto", x) == "torch"
    monkeypatch.setenv(ENV, "")  # empty means unset
    assert resolve_backend("auto", x) == "torch"


def test_forced_triton_without_triton_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dispatch, "_triton_import_error", lambda: "ImportError: no triton")
    assert not _dispatch.triton_available()
    assert resolve_backend("auto", torch.zeros(2)) == "torch"
    with pytest.raises(RuntimeError, match=r"^kexue\.flows: .*cannot be imported \(ImportError"):
        resolve_backend("triton", torch.zeros(2))
    monkeypatch.setenv(ENV, "triton")  # the variable forces it just as the argument does
    with pytest.raises(RuntimeError, match="cannot be imported"):
        resolve_backend("auto", torch.zeros(2))


def test_forced_triton_on_cpu_needs_the_interpreter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dispatch, "_triton_import_error", lambda: None)
    x = torch.zeros(2)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match=r"^kexue\.flows: .*inputs are on cpu.*need CUDA"):
        resolve_backend("triton", x)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert resolve_backend("triton", x) == "triton"
    assert resolve_backend("auto", x) == "torch"  # the interpreter never makes "auto" pick Triton
