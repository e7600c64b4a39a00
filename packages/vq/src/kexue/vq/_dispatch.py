"""Backend choice for the package's Triton kernels: Triton on CUDA, the torch reference elsewhere.

Every kexue package that carries kernels has this module, identical but for the ``_ENV`` line: the
runtime code of each package stays independent, and one pattern holds across them.

- ``backend`` arguments accept ``"auto"`` (default), ``"triton"`` or ``"torch"``; the environment
  variable named by ``_ENV`` (``KEXUE_<PACKAGE>_BACKEND``) overrides ``"auto"`` for the whole process.
- ``"auto"`` picks Triton when every input tensor is on CUDA and ``import triton`` succeeds, the
  reference in ``functional.py`` otherwise (silently: the caller did not ask for a backend).
- Forcing ``"triton"`` where it cannot run raises a :class:`RuntimeError` that says why, never a
  silent fallback. Under ``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by the CPU test
  suites) ``"triton"`` is allowed on CPU tensors; ``"auto"`` still picks the reference there.
- The op imports its kernel module, ``_kernels/triton_<op>.py``, inside the ``"triton"`` branch, so
  that importing the package never imports Triton.
"""

from __future__ import annotations

import functools
import os
from typing import Literal

import torch

__all__ = ["Backend", "resolve_backend", "triton_available"]

Backend = Literal["auto", "triton", "torch"]
_ENV = "KEXUE_VQ_BACKEND"
_PACKAGE = __name__.rpartition(".")[0]
_CHOICES = ("auto", "triton", "torch")


@functools.cache
def _triton_import_error() -> str | None:
    try:
        import triton
        import triton.language  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install raising at import
        return f"{type(exc).__name__}: {exc}"
    return None


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    """Whether ``import triton`` succeeds in this process."""
    return _triton_import_error() is None


def resolve_backend(backend: str, *tensors: torch.Tensor) -> Literal["triton", "torch"]:
    """Pick the backend for an op on ``tensors``.

    Arguments:
        backend: ``"auto"``, ``"triton"`` or ``"torch"``; ``"auto"`` defers to the ``_ENV``
            environment variable when set, then picks Triton when every tensor is on CUDA and
            Triton imports.
        tensors: the op's tensor inputs.

    Returns:
        ``"triton"`` or ``"torch"``.

    Raises:
        ValueError: for an unknown backend name (argument or environment variable).
        RuntimeError: when ``"triton"`` is forced but cannot run, with the reason.
    """
    if backend not in _CHOICES:
        raise ValueError(f"backend must be one of {_CHOICES}, got {backend!r}")
    if backend == "auto":
        env = os.environ.get(_ENV, "auto").strip().lower() or "auto"
        if env not in _CHOICES:
            raise ValueError(f"{_ENV} must be one of {_CHOICES}, got {env!r}")
        backend = env
        if backend == "auto":
            on_cuda = bool(tensors) and all(t.is_cuda for t in tensors)
            return "triton" if on_cuda and triton_available() else "torch"
    if backend == "torch":
        return "torch"
    err = _triton_import_error()
    if err is not None:
        raise RuntimeError(
            f"{_PACKAGE}: backend='triton' requested but triton cannot be imported ({err})"
        )
    if not _interpreting() and not all(t.is_cuda for t in tensors):
        devices = sorted({str(t.device) for t in tensors})
        raise RuntimeError(
            f"{_PACKAGE}: backend='triton' requested but the inputs are on "
            f"{', '.join(devices)}; the Triton kernels need CUDA tensors "
            "(or TRITON_INTERPRET=1 for the CPU interpreter)"
        )
    return "triton"
