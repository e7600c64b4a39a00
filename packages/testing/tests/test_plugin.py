"""The plugin is active in this very session: seeding, the hypothesis profile, Triton, markers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import kexue.testing as kt
from kexue.testing import plugin

NO_CUDA = not torch.cuda.is_available()


def test_registered_through_the_entry_point(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.get_plugin("kexue-testing") is plugin


@pytest.mark.parametrize("run", [1, 2])  # the second test sees the same state as the first
def test_every_test_starts_from_seed_zero(run: int) -> None:
    expected = torch.rand(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)
    assert random.random() == random.Random(0).random()
    np = pytest.importorskip("numpy")
    assert np.random.random() == np.random.RandomState(0).random_sample()
    torch.rand(100)  # move the global state on: the next test must not see it


def test_seed_everything_is_reproducible() -> None:
    kt.seed_everything(7)
    a = torch.randn(5), random.random()
    kt.seed_everything(7)
    b = torch.randn(5), random.random()
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=0)
    assert a[1] == b[1]


def test_hypothesis_profile_is_derandomised() -> None:
    hypothesis = pytest.importorskip("hypothesis")
    assert hypothesis.settings.default.derandomize is True
    assert hypothesis.settings.get_profile(kt.HYPOTHESIS_PROFILE).derandomize is True


@pytest.mark.skipif(not NO_CUDA, reason="the interpreter is switched on only without CUDA")
def test_triton_interpreter_is_on_without_cuda() -> None:
    assert os.environ.get("TRITON_INTERPRET") == "1"


def test_markers_are_registered(pytestconfig: pytest.Config) -> None:
    names = {line.split(":", 1)[0] for line in pytestconfig.getini("markers")}
    assert {"slow", "gpu"} <= names


@pytest.mark.gpu
def test_gpu_marker_skips_without_cuda() -> None:
    assert torch.cuda.is_available()  # reached only with CUDA


@pytest.mark.skipif(not NO_CUDA, reason="checks the CPU interpreter switch")
def test_triton_switch_precedes_every_conftest(tmp_path: Path) -> None:
    """A fresh pytest run, with nothing listing the plugin: the conftest, imported first of the
    project's files, already sees TRITON_INTERPRET=1 and the profile; a gpu test is skipped."""
    (tmp_path / "conftest.py").write_text(
        "import os\nSEEN = os.environ.get('TRITON_INTERPRET')\n"
        "from hypothesis import settings\nPROFILE = settings.default.derandomize\n"
    )
    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from conftest import SEEN, PROFILE

            def test_seen():
                assert SEEN == "1" and PROFILE is True

            @pytest.mark.gpu
            def test_gpu():
                raise AssertionError("must be skipped")
            """
        )
    )
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider --strict-markers\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"TRITON_INTERPRET", "PYTEST_ADDOPTS"}}
    env.pop("PYTEST_XDIST_WORKER", None)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-rs", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 passed, 1 skipped" in res.stdout, res.stdout
