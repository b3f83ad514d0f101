"""Masks, pruning strategies, and masked training that keeps pruned weights at exactly zero."""

from __future__ import annotations

import pytest
import torch

from ticketpack.data import SplitConfig, get
from ticketpack.models import ModelSpec, build
from ticketpack.pruning import mask as masks
from ticketpack.pruning.strategies import prune
from ticketpack.pruning.targets import output_layer, parameters, prunable_names
from ticketpack.training import TrainConfig, train


def lenet():
    torch.manual_seed(0)
    from ticketpack.data import ImagePreprocessing

    return build(ModelSpec(name="lenet-300-100"), ImagePreprocessing(), 10)


def P(model):
    """The prunable weights of a model, by name."""
    return parameters(model, prunable_names(model))


def test_masks_cover_linear_weights_but_not_biases():
    model = lenet()
    assert prunable_names(model) == ["hidden.0.weight", "hidden.1.weight", "out.weight"]
    assert output_layer(model, torch.zeros(2, 1, 8, 8)) == "out"


@pytest.mark.parametrize("name,opts,kind", [("convnet", {}, "image"), ("bow", {}, "text"), ("textcnn", {}, "text")])
def test_every_model_has_prunable_conv_or_embedding_weights(name, opts, kind):
    from ticketpack.data import ImagePreprocessing, TextPreprocessing

    prep = ImagePreprocessing() if kind == "image" else TextPreprocessing(num_buckets=100, max_tokens=12)
    model = build(ModelSpec(name=name, options=opts), prep, 3)
    names = prunable_names(model)
    assert "out.weight" in names and len(names) >= 2
    x = torch.from_numpy(prep.transform([[0.0] * 64] if kind == "image" else ["a b c"]))
    assert model(x).shape == (1, 3)


@pytest.mark.parametrize("strategy", ["global", "layerwise", "random"])
def test_sparsity_after_r_rounds_is_one_minus_keep_rate_to_the_r(strategy):
    model = lenet()
    mask = masks.ones_like(P(model))
    gen = torch.Generator().manual_seed(0)
    p = 0.2
    for r in range(1, 6):
        weights = {n: torch.randn_like(w) for n, w in P(model).items()}
        mask = prune(strategy, weights, mask, p, ["out.weight"], p, gen)
        assert masks.density(mask) == pytest.approx((1 - p) ** r, abs=1e-4)


def test_layerwise_and_random_prune_every_layer_at_the_same_rate():
    model = lenet()
    gen = torch.Generator().manual_seed(0)
    weights = P(model)
    for strategy in ("layerwise", "random"):
        new = prune(strategy, weights, masks.ones_like(P(model)), 0.5, ["out.weight"], 0.5, gen)
        for name, d in masks.layer_density(new).items():
            assert d == pytest.approx(0.5, abs=1e-3), (strategy, name)


def test_output_layer_is_pruned_at_its_own_rate():
    model = lenet()
    new = prune("global", P(model), masks.ones_like(P(model)), 0.4, ["out.weight"], 0.2,
                torch.Generator().manual_seed(0))
    assert masks.layer_density(new)["out.weight"] == pytest.approx(0.8, abs=1e-3)


def test_global_magnitude_prunes_the_smallest_weights_across_layers():
    weights = {"a": torch.tensor([0.1, 5.0, 0.2, 6.0]), "b": torch.tensor([3.0, 0.05, 4.0, 7.0])}
    mask = {k: torch.ones(4, dtype=torch.bool) for k in weights}
    new = prune("global", weights, mask, 0.375, [], 0.0, torch.Generator())
    assert new["a"].tolist() == [False, True, False, True]
    assert new["b"].tolist() == [True, False, True, True]


def test_pruning_never_revives_a_pruned_weight():
    model = lenet()
    gen = torch.Generator().manual_seed(1)
    mask = prune("global", P(model), masks.ones_like(P(model)), 0.5, [], 0.0, gen)
    big = {n: torch.full_like(w, 100.0) for n, w in P(model).items()}
    newer = prune("global", big, mask, 0.5, [], 0.0, gen)
    for n in mask:
        assert not (newer[n] & ~mask[n]).any()


def test_random_like_keeps_per_layer_counts_but_moves_the_weights():
    model = lenet()
    mask = prune("global", P(model), masks.ones_like(P(model)), 0.7, [], 0.0,
                 torch.Generator().manual_seed(0))
    rnd = masks.random_like(mask, torch.Generator().manual_seed(1))
    for n in mask:
        assert int(rnd[n].sum()) == int(mask[n].sum())
    assert masks.digest(rnd) != masks.digest(mask)


@pytest.mark.parametrize(
    "optimizer,extra",
    [("sgd", {"momentum": 0.9}), ("adam", {}), ("adamw", {"weight_decay": 0.1}), ("sgd", {"weight_decay": 0.01})],
)
def test_pruned_weights_stay_exactly_zero_under_every_optimizer(optimizer, extra):
    data = get("digits").load("clean", 0, SplitConfig())
    model = lenet()
    # start from nonzero pruned weights, and prune at random so nothing lines up with small magnitudes
    mask = prune("random", P(model), masks.ones_like(P(model)), 0.8, [], 0.0, torch.Generator().manual_seed(3))
    cfg = TrainConfig(optimizer=optimizer, lr=0.2 if optimizer == "sgd" else 0.01, iterations=100, **extra)
    result = train(model, data, cfg, seed=0, mask=mask)
    params = dict(model.named_parameters())
    for name, m in mask.items():
        assert (params[name][~m] == 0).all()
        assert (result.state[name][~m] == 0).all()
        assert (params[name][m] != 0).float().mean() > 0.99  # the kept weights did train
    assert result.test_accuracy > 0.25  # it learned: chance is 0.1


def test_mask_file_round_trip_rejects_non_binary_tensors():
    from ticketpack.core.errors import TicketpackError

    m = {"w": torch.tensor([True, False])}
    assert masks.from_file(masks.to_file(m))["w"].tolist() == [True, False]
    with pytest.raises(TicketpackError, match="0/1"):
        masks.from_file({"w": torch.tensor([0, 2], dtype=torch.uint8)})
