"""Models, margins and parameter validation."""

from __future__ import annotations

import math

import pytest
import torch

from prunebounds import margins, models, profiles
from prunebounds.errors import ParameterError


def test_paper_architectures():
    assert models.resolve_widths("paper-mnist") == (784, 784, 784, 784, 784, 10)
    assert models.resolve_widths("paper-cifar10") == (3072, 2000, 2000, 2000, 2000, 10)
    net = models.MLP("lenet-300-100")
    shapes = [tuple(w.shape) for w in models.weight_matrices(net)]
    assert shapes == [(300, 784), (100, 300), (10, 100)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net) == 2  # no ReLU on the logits


def test_build_is_seeded():
    a, b = models.build("smoke", 3), models.build("smoke", 3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    c = models.build("smoke", 4)
    assert not torch.equal(a[0].weight, c[0].weight)


@pytest.mark.parametrize("widths", [[784], [784, 0, 10], [784, -3, 10], [784, 2.5, 10]])
def test_bad_widths(widths):
    with pytest.raises(ParameterError):
        models.MLP(widths)


def test_margins_against_a_loop():
    torch.manual_seed(0)
    out = torch.randn(50, 10)
    y = torch.randint(0, 10, (50,))
    m = margins.margins(out, y)
    for i in range(50):
        others = [out[i, j].item() for j in range(10) if j != y[i]]
        assert m[i].item() == pytest.approx(out[i, y[i]].item() - max(others))


def test_margin_is_not_against_predicted_class():
    out = torch.tensor([[1.0, 3.0, 2.0]])  # predicted class 1 is the label
    assert margins.margins(out, torch.tensor([1])).item() == pytest.approx(1.0)
    assert margins.margins(out, torch.tensor([0])).item() == pytest.approx(-2.0)


def test_margin_loss_counts_ties_and_percentiles():
    m = torch.tensor([-1.0, 0.0, 0.5, 2.0])
    assert margins.margin_loss(m, 0.0) == 0.5  # <= gamma, ties count
    assert margins.margin_loss(m, 10.0) == 1.0
    assert margins.min_margin(m) == -1.0
    assert margins.margin_percentile(m, 0) == -1.0
    assert margins.margin_percentile(m, 100) == 2.0


def test_error_rate_counts_ties_as_errors():
    """A tie between the correct logit and another one is an error (margin <= 0), even
    when argmax would pick the label because it comes first."""
    out = torch.tensor([[2.0, 2.0, 0.0],    # tie, label 0 is argmax's first index: an error
                        [0.0, 1.0, 3.0],    # correct, margin 2
                        [5.0, 1.0, 1.0],    # wrong (label 1), margin -4
                        [1.0, 1.0, 1.0]])   # all equal: an error
    y = torch.tensor([0, 2, 1, 2])
    assert margins.error_rate(out, y) == 0.75
    assert margins.accuracy(out, y) == 0.25
    assert int(margins.n_correct(out, y)) == 1
    assert float((out.argmax(1) == y).double().mean()) == 0.5   # what argmax would say
    net = torch.nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.eye(3))
    assert margins.model_error_rate(net, out, y) == 0.75
    assert margins.model_accuracy(net, out, y) == 0.25
    assert math.isnan(margins.error_rate(out[:0], y[:0]))
    assert math.isnan(margins.model_accuracy(net, out[:0], y[:0]))


def test_profile_resolution_and_errors(monkeypatch):
    assert profiles.resolve("smoke").dataset == "synthetic"
    assert profiles.resolve("quick", epochs=3).epochs == 3
    monkeypatch.setenv(profiles.ENV_VAR, "smoke")
    assert profiles.resolve(None).name == "smoke"
    with pytest.raises(ParameterError, match="full, quick, smoke"):
        profiles.resolve("huge")
    with pytest.raises(ParameterError, match="cifar10, mnist, synthetic"):
        profiles.resolve("smoke", dataset="svhn")
    with pytest.raises(ParameterError, match="integer"):
        profiles.resolve("smoke", seed=1.5)
    with pytest.raises(ParameterError, match="integer"):
        profiles.resolve("smoke", seed="0")
    with pytest.raises(ParameterError, match=">= 1"):
        profiles.resolve("smoke", epochs=-2)
    with pytest.raises(ParameterError, match="unknown parameter"):
        profiles.resolve("smoke", widths=3)
