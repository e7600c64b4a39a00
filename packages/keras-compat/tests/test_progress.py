"""RunningMean / progbar / is_rank_zero (spec §2.12, §3.1 aux/progress, §1.5 rule 6)."""

from __future__ import annotations

import io
import sys

import pytest
import torch

from kexue.keras_compat import progress
from kexue.keras_compat.progress import RunningMean, is_rank_zero, progbar


def test_running_mean_is_batch_count_weighted() -> None:
    meter = RunningMean(stateful_metrics=["acc"])
    logs = [({"loss": 2.0, "acc": 0.5}, 1), ({"loss": 1.0, "acc": 0.6}, 3), ({"loss": 4.0}, 2)]
    for values, n in logs:
        meter.update(values, n=n)
    expected = (2.0 * 1 + 1.0 * 3 + 4.0 * 2) / 6
    assert meter.result() == pytest.approx({"loss": expected, "acc": 0.6}, rel=1e-15)
    assert meter["loss"] == pytest.approx(expected, rel=1e-15)
    meter.reset()
    assert meter.result() == {}


def test_running_mean_tensors_and_state_dict() -> None:
    meter = RunningMean()
    values = torch.tensor([0.5, 1.5, 3.0], dtype=torch.float64)
    for v in values:
        meter.update(loss=v.clone().requires_grad_())
    meter.update(loss=torch.tensor([2.0], dtype=torch.float64), n=2)
    expected = (values.sum().item() + 4.0) / 5
    assert meter.result()["loss"] == pytest.approx(expected, rel=1e-15)
    other = RunningMean()
    other.load_state_dict(meter.state_dict())
    other.update(loss=1.0)
    assert other.result()["loss"] == pytest.approx((expected * 5 + 1.0) / 6, rel=1e-15)
    assert "loss" in other and "acc" not in other


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.update(loss=1.0, n=0), "n must"),
        (lambda m: m.update(loss=torch.ones(2)), "loss"),
        (lambda m: m.update(loss="x"), "loss"),
    ],
)
def test_running_mean_bad_input(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(RunningMean())


def test_is_rank_zero_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    assert is_rank_zero()
    monkeypatch.setenv("RANK", "1")
    assert not is_rank_zero()
    monkeypatch.setenv("RANK", "0")
    assert is_rank_zero()


@pytest.mark.parametrize("tqdm_present", [True, False])
def test_nothing_printed_on_other_ranks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tqdm_present: bool
) -> None:
    if not tqdm_present:
        monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm → ImportError
    monkeypatch.setenv("RANK", "1")
    meter = RunningMean()
    buf = io.StringIO()
    bar = progbar(range(4), metrics=meter, desc="train")
    seen = []
    for i in bar:
        meter.update(loss=float(i))
        seen.append(i)
    bar.write("epoch done")
    for _ in progbar(range(2), file=buf):
        pass
    assert seen == [0, 1, 2, 3]
    out = capsys.readouterr()
    assert out.out == "" and out.err == "" and buf.getvalue() == ""


@pytest.mark.parametrize("tqdm_present", [True, False])
def test_rank_zero_prints_running_means(
    monkeypatch: pytest.MonkeyPatch, tqdm_present: bool
) -> None:
    if tqdm_present:
        pytest.importorskip("tqdm")
    else:
        monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(progress, "is_rank_zero", lambda: True)
    meter = RunningMean()
    buf = io.StringIO()
    for i in progbar(range(4), metrics=meter, desc="train", file=buf, mininterval=0.0):
        meter.update(loss=float(i))
    text = buf.getvalue()
    assert "train" in text and "4/4" in text
    assert "loss" in text and "1.5" in text  # mean of 0, 1, 2, 3


def test_rank_function_monkeypatched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(progress, "is_rank_zero", lambda: False)
    buf = io.StringIO()
    assert list(progbar(range(3), file=buf)) == [0, 1, 2]
    assert buf.getvalue() == ""
