"""src/infer/sampling.py: greedy at temperature 0, the filters keep what they say, seeds reproduce."""

import pytest
import torch

from src.infer import Sampler

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, 3.0])


def draws(sampler, n=400):
    return [sampler(LOGITS) for _ in range(n)]


def test_greedy_and_filters():
    assert Sampler(temperature=0)(LOGITS) == 5
    assert set(draws(Sampler(top_k=1, top_p=1.0, seed=0))) == {5}
    assert set(draws(Sampler(top_k=2, top_p=1.0, seed=0))) == {5, 0}
    probs = torch.softmax(LOGITS, 0)                     # 0.63, 0.23, ...: top_p 0.8 keeps the two largest
    assert probs.sort(descending=True).values[:2].sum() > 0.8 > probs.max()
    assert set(draws(Sampler(top_p=0.8, seed=0))) == {5, 0}
    assert set(draws(Sampler(top_p=1.0, seed=0))) == set(range(6))
    # a low temperature sharpens: the most probable token wins far more often
    cold = draws(Sampler(temperature=0.3, top_p=1.0, seed=1))
    warm = draws(Sampler(temperature=1.0, top_p=1.0, seed=1))
    assert cold.count(5) > warm.count(5) + 80


def test_seeds_reproduce_and_differ():
    assert draws(Sampler(seed=7, top_p=1.0), 50) == draws(Sampler(seed=7, top_p=1.0), 50)
    assert draws(Sampler(seed=7, top_p=1.0), 50) != draws(Sampler(seed=8, top_p=1.0), 50)
    torch.manual_seed(0)
    a = draws(Sampler(seed=3, top_p=1.0), 20)
    torch.rand(100)                                    # the global RNG does not matter
    assert draws(Sampler(seed=3, top_p=1.0), 20) == a


@pytest.mark.parametrize("kwargs, message", [({"temperature": -1}, "--temperature"), ({"top_p": 0}, "--top_p"),
                                             ({"top_p": 1.5}, "--top_p"), ({"top_k": -2}, "--top_k")])
def test_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Sampler(**kwargs)


@pytest.mark.parametrize("temperature", [1e-9, 0.01, 0.05])
def test_any_positive_temperature_samples(temperature):
    """p ** (1 / T) underflows to zeros for small T; done on the logits it is the same distribution."""
    assert set(draws(Sampler(temperature=temperature, top_p=1.0, seed=0), 50)) == {5}
    wide = torch.tensor([0.0, -30.0, 40.0, 39.9])                  # T = 0.05: p(2) / p(3) = e^2
    picks = [Sampler(temperature=0.05, top_p=1.0, seed=s)(wide) for s in range(300)]
    assert set(picks) == {2, 3} and 0.7 < picks.count(2) / 300 < 0.97


def test_non_finite_logits_and_bad_seeds_are_errors():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN or infinite"):
            Sampler(seed=0)(torch.tensor([0.0, bad, 1.0]))
    for seed in (2**70, -1):
        with pytest.raises(ValueError, match=r"--seed must be a whole number in \[0, 2\^64\)"):
            Sampler(seed=seed)
