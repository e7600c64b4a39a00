"""Tests for kexue.flows.layers.permutation: reverse / random / fixed permutations, exact round trips."""

from __future__ import annotations

import pytest
import torch
from _flowcheck import check_exact_roundtrip, check_logdet_vs_jacobian, gen
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue.flows.layers.permutation import Permutation
from kexue.flows.layers.reshape import Interleave, ParitySplit

# ----------------------------------------------------------------------------- Permutation


def test_permutation_reverse_values() -> None:
    x = torch.arange(10.0).reshape(2, 5)
    y = check_exact_roundtrip(Permutation(5), x)
    assert torch.equal(y, x.flip(1))


@pytest.mark.parametrize("mode", ["reverse", "random"])
@pytest.mark.parametrize("dim", [1, 2])
def test_permutation_roundtrip_and_jacobian(mode: str, dim: int) -> None:
    layer = Permutation(4, mode=mode, dim=dim, generator=gen(3))  # type: ignore[arg-type]
    x = torch.randn(3, 4, 4, dtype=torch.float64, generator=gen(1))
    check_exact_roundtrip(layer, x)
    check_logdet_vs_jacobian(layer, x, 1e-12)


def test_permutation_image_channels() -> None:
    layer = Permutation(6, mode="fixed", perm=[2, 0, 1, 5, 3, 4])
    x = torch.randn(2, 6, 3, 3, generator=gen(2))
    y = check_exact_roundtrip(layer, x)
    assert torch.equal(y[:, 0], x[:, 2]) and torch.equal(y[:, 3], x[:, 5])


def test_permutation_random_state_dict_roundtrip() -> None:
    a = Permutation(16, mode="random", generator=gen(7))
    b = Permutation(16, mode="random", generator=gen(8))
    assert not torch.equal(a.perm, b.perm)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.perm, b.perm) and torch.equal(a.inv_perm, b.inv_perm)
    x = torch.randn(3, 16, generator=gen(0))
    assert torch.equal(a(x)[0], b(x)[0])
    assert torch.equal(b.inverse(a(x)[0])[0], x)


def test_permutation_random_uses_generator() -> None:
    a = Permutation(32, mode="random", generator=gen(5))
    b = Permutation(32, mode="random", generator=gen(5))
    assert torch.equal(a.perm, b.perm)
    assert torch.equal(torch.sort(a.perm).values, torch.arange(32))


def test_permutation_bad_input() -> None:
    with pytest.raises(ValueError, match="perm"):
        Permutation(3, mode="fixed", perm=[0, 0, 1])
    with pytest.raises(ValueError, match="perm"):
        Permutation(3, mode="fixed")
    with pytest.raises(ValueError, match="mode"):
        Permutation(3, mode="shuffle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x"):
        Permutation(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="y"):
        Permutation(3).inverse(torch.zeros(2, 4))


@settings(max_examples=20, deadline=None)
@given(
    b=st.integers(1, 3),
    half=st.integers(1, 6),
    mode=st.sampled_from(["reverse", "random"]),
    seed=st.integers(0, 1000),
)
def test_permutation_and_parity_property(b: int, half: int, mode: str, seed: int) -> None:
    d = 2 * half
    x = torch.randn(b, d, 2, generator=gen(seed))
    perm = Permutation(d, mode=mode, generator=gen(seed))  # type: ignore[arg-type]
    y = check_exact_roundtrip(perm, x)
    assert torch.equal(y.sort(1).values, x.sort(1).values)
    check_exact_roundtrip(ParitySplit(), x)
    check_exact_roundtrip(Interleave(), x)
    assert torch.equal(Interleave()(ParitySplit()(x)[0])[0], x)


def test_permutation_load_state_dict_validates() -> None:
    """issue 18 probe: a state dict whose perm is not a permutation loaded silently."""
    layer = Permutation(4, mode="random", generator=gen(9))
    good = {k: v.clone() for k, v in layer.state_dict().items()}
    bad_perm = {"perm": torch.tensor([0, 0, 1, 2]), "inv_perm": torch.tensor([0, 1, 2, 3])}
    bad_inv = {"perm": torch.tensor([1, 0, 3, 2]), "inv_perm": torch.tensor([0, 1, 2, 3])}
    bad_dtype = {"perm": torch.tensor([1.0, 0, 3, 2]), "inv_perm": torch.tensor([1, 0, 3, 2])}
    for sd, match in (
        (bad_perm, "permutation of range"),
        (bad_inv, "inverse"),
        (bad_dtype, "integer"),
    ):
        with pytest.raises(RuntimeError, match=match):
            layer.load_state_dict(sd)
        assert torch.equal(layer.perm, good["perm"])  # the failed load changed nothing usable
    ok = {"perm": torch.tensor([1, 0, 3, 2]), "inv_perm": torch.tensor([1, 0, 3, 2])}
    layer.load_state_dict(ok)
    assert torch.equal(layer.perm, ok["perm"])
    x = torch.randn(2, 4, generator=gen(1))
    assert torch.equal(layer.inverse(layer(x)[0])[0], x)
    with pytest.raises(RuntimeError, match="shape"):  # wrong size: ours and torch's messages
        layer.load_state_dict({"perm": torch.arange(5), "inv_perm": torch.arange(5)})
