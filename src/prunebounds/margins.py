"""Classification margins, the margin loss, and THE error rate of the package.

The margin of a sample (x, y) is f(x)[y] - max_{j != y} f(x)[j]: the correct-class
logit minus the largest *other* logit (not the predicted class). The empirical margin
loss of Arora et al. (2018) counts the samples whose margin is at most gamma,

    R^_gamma(f) = (1/m) #{ i : f(x_i)[y_i] <= gamma + max_{j != y_i} f(x_i)[j] },

with ``<=`` as a public review of the paper points out (the paper prints it reversed).

Error rate and accuracy. **A sample counts as an error when its margin is <= 0**, so a
tie between the correct logit and another one is an error (``argmax(f(x)) == y`` would
call a tie correct when the label happens to be the first maximal index). The error
rate is therefore exactly R^_0, the margin loss at gamma = 0, and the accuracy is one
minus it. Every error rate and accuracy in the package -- training, evaluation,
pruned networks, lottery tickets, the networks beyond MLPs -- comes from
:func:`error_rate`, :func:`accuracy` or, inside the training loop, :func:`n_correct`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = [
    "logits",
    "margins",
    "margin_loss",
    "min_margin",
    "margin_percentile",
    "n_correct",
    "error_rate",
    "accuracy",
    "model_error_rate",
    "model_accuracy",
]


@torch.no_grad()
def logits(model: nn.Module, X: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """The model's outputs on ``X``, computed in batches without gradients.

    The batches are moved to the device of the model's parameters (a no-op when ``X``
    is already there); the outputs stay on that device.
    """
    was_training = model.training
    model.eval()
    param = next(model.parameters(), None)
    device = X.device if param is None else param.device
    try:
        return torch.cat([model(X[i:i + batch_size].to(device))
                          for i in range(0, len(X), batch_size)])
    finally:
        model.train(was_training)


def margins(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample margins f(x)[y] - max_{j != y} f(x)[j] of logits ``out`` (n x classes)."""
    y = y.to(out.device)
    correct = out.gather(1, y[:, None]).squeeze(1)
    others = out.scatter(1, y[:, None], float("-inf"))
    return correct - others.max(dim=1).values


def margin_loss(m: torch.Tensor, gamma: float) -> float:
    """Empirical margin loss R^_gamma: the fraction of margins ``m`` that are <= gamma."""
    return float((m <= gamma).to(torch.float64).mean())


def min_margin(m: torch.Tensor) -> float:
    """The smallest margin (negative when a training sample is misclassified)."""
    return float(m.min())


def margin_percentile(m: torch.Tensor, q: float) -> float:
    """The q-th percentile (0-100) of the margins; q = 0 is the minimum."""
    return float(torch.quantile(m.to(torch.float64), q / 100.0))


def n_correct(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Number of samples with a positive margin, as an int64 tensor on ``out``'s device.

    For the training loop, which sums it over an epoch without moving it to the host.
    """
    return (margins(out, y) > 0).sum()


def error_rate(out: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of samples whose margin is <= 0 (ties are errors): R^_0 from logits.

    NaN for an empty set.
    """
    if len(y) == 0:
        return math.nan
    return margin_loss(margins(out, y), 0.0)


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    """One minus :func:`error_rate`: the fraction of samples with a positive margin."""
    return 1.0 - error_rate(out, y)


def model_error_rate(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """:func:`error_rate` of ``model`` on (X, y) (one batched forward pass)."""
    if len(y) == 0:
        return math.nan
    return error_rate(logits(model, X), y)


def model_accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """:func:`accuracy` of ``model`` on (X, y) (one batched forward pass)."""
    return 1.0 - model_error_rate(model, X, y)
