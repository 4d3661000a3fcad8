"""Classification margins and the margin loss.

The margin of a sample (x, y) is f(x)[y] - max_{j != y} f(x)[j]: the correct-class
logit minus the largest *other* logit (not the predicted class). The empirical margin
loss of Arora et al. (2018) counts the samples whose margin is at most gamma,

    R^_gamma(f) = (1/m) #{ i : f(x_i)[y_i] <= gamma + max_{j != y_i} f(x_i)[j] },

with ``<=`` as a public review of the paper points out (the paper prints it reversed);
R^_0 is the classification error, counting ties as errors.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def logits(model: nn.Module, X: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """The model's outputs on ``X``, computed in batches without gradients."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat([model(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    finally:
        model.train(was_training)


def margins(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample margins f(x)[y] - max_{j != y} f(x)[j] of logits ``out`` (n x classes)."""
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
