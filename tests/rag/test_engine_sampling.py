"""Token choice on the device: counter-based noise, temperature and nucleus filtering."""

from __future__ import annotations

import math

import torch

from rag.generate.engine_sampling import select_tokens, uniform_noise


def test_noise_is_uniform_and_fixed_by_seed_and_counter() -> None:
    seeds, counters = torch.tensor([1, 1, 2]), torch.tensor([5, 6, 5])
    noise = uniform_noise(seeds, counters, 50_000)
    assert torch.equal(noise, uniform_noise(seeds, counters, 50_000))
    assert bool((noise > 0).all()) and bool((noise < 1).all())
    assert abs(float(noise.mean()) - 0.5) < 0.01
    assert not torch.equal(noise[0], noise[1]) and not torch.equal(noise[0], noise[2])


def test_nucleus_keeps_the_smallest_prefix_reaching_top_p() -> None:
    rows = 4000
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).repeat(rows, 1)

    def draw(top_p: float) -> torch.Tensor:
        return select_tokens(
            logits,
            torch.ones(rows),
            torch.full((rows,), top_p),
            torch.arange(rows),
            torch.zeros(rows, dtype=torch.int64),
            sampling=True,
        )

    assert bool((draw(0.5) == 0).all())
    tokens = draw(0.8)
    assert not bool((tokens == 2).any())
    assert math.isclose(float((tokens == 0).float().mean()), 0.6 / 0.9, abs_tol=0.03)
    counts = torch.bincount(draw(1.0), minlength=3).float() / rows
    assert torch.allclose(counts, torch.tensor([0.6, 0.3, 0.1]), atol=0.03)


def test_greedy_rows_stay_greedy_in_a_sampling_step() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.9]])
    chosen = select_tokens(
        logits,
        torch.tensor([0.0, 0.0]),
        torch.ones(2),
        torch.tensor([1, 2]),
        torch.tensor([3, 3]),
        sampling=True,
    )
    assert chosen.tolist() == [1, 0]
