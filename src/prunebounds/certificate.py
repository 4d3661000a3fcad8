"""The certificate: an Occam bound in the Langford-Seeger kl form, priced in bytes.

The bound (Theorem "Occam-kl")
------------------------------
Let c be a prefix-free code for classifiers, fixed before the training sample S of m
i.i.d. examples is drawn, and |c(h)| the length in bits of the codeword of h. Let
err(h) be h's error probability and err_S(h) its error rate on S. Then, for any
delta in (0, 1), with probability at least 1 - delta over S, **every** classifier h
with a codeword satisfies

    kl( err_S(h) || err(h) ) <= ( |c(h)| ln 2 + ln(1/delta) ) / m,            (Occam-kl)

where kl(q || p) = q ln(q/p) + (1 - q) ln((1 - q)/(1 - p)) is the relative entropy of
two Bernoulli distributions. Hence err(h) <= kl^{-1}(err_S(h), (|c(h)| ln 2 +
ln(1/delta)) / m), the largest p >= err_S(h) that satisfies the inequality.

Proof sketch. Fix h. m err_S(h) is Binomial(m, err(h)), and the Chernoff bound for
its lower tail in relative-entropy form gives P(err_S(h) <= q) <= exp(-m kl(q || err(h)))
for q <= err(h) (Langford 2005, Section 3). Give h the failure probability
delta 2^-|c(h)|: the event "err(h) > kl^{-1}(err_S(h), eps_h)" with
eps_h = (|c(h)| ln 2 + ln(1/delta)) / m has probability at most exp(-m eps_h) =
delta 2^-|c(h)|. Kraft's inequality for the prefix-free code, sum_h 2^-|c(h)| <= 1,
and a union bound over h give total failure probability at most delta.

This is the Occam's razor bound of Langford (2005, "Tutorial on practical prediction
theory for classification", JMLR 6, Section 4), there stated with the exact binomial
tail, of which the kl form is the Chernoff relaxation (looser by O(ln(m) / m)). It is
the deterministic, countable-prior counterpart of the PAC-Bayes-kl bound of Langford &
Seeger (2001), Seeger (2002) and McAllester (1999) (which, for averaged classifiers,
adds ln(2 sqrt(m)) / m). Zhou et al. (2019) and Lotfi et al. (2022) bound compressed
networks the same way, with the length of a prefix-free code as -log2 of the prior.

What the union bound pays for
-----------------------------
Because the bound holds for all coded networks simultaneously, any choice that is
*written in the code* is already paid for by its bits: the header of
:mod:`prunebounds.coding` records the widths, b, the quantiser, the float format, the
bias grid and the position model of every layer, so trying several b, quantisers,
pruning levels, networks or training runs (and keeping the best) costs nothing more;
neither does training on the same 60,000 images. Any other choice made after seeing
the sample (several codes that are *not* one prefix-free code, several delta) is
paid with a uniform prior over the N alternatives: ``n_choices = N`` adds ln N to the
numerator (a union bound with delta / N each). The choice of the code itself must
not depend on S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from . import coding
from .errors import ParameterError
from .margins import model_error_rate
from .validate import check_delta, check_int, check_m, check_real

__all__ = [
    "kl_bernoulli",
    "kl_inverse_upper",
    "occam_kl_bound",
    "bits_for_bound",
    "Certificate",
    "certify",
    "check_not_below_test_error",
]

LN2 = math.log(2.0)
#: :func:`certify` with ``skip_vacuous`` does not measure the training error when the
#: bound at training error 0 is already at least this.
VACUOUS_AT = 1.0 - 1e-6


def _check_fraction(name: str, q: Any) -> float:
    return check_real(name, q, minimum=0.0, maximum=1.0)


def kl_bernoulli(q: float, p: float) -> float:
    """kl(q || p) = q ln(q/p) + (1-q) ln((1-q)/(1-p)), in nats, with 0 ln 0 = 0.

    The relative entropy of Bernoulli(q) from Bernoulli(p) (Cover & Thomas 2006,
    Section 2.3; Langford 2005, Section 3). Infinite when p is 0 or 1 and q differs
    from it.
    """
    q = _check_fraction("q", q)
    p = _check_fraction("p", p)
    out = 0.0
    if q > 0.0:
        if p == 0.0:
            return math.inf
        out += q * math.log(q / p)
    if q < 1.0:
        if p == 1.0:
            return math.inf
        out += (1.0 - q) * math.log((1.0 - q) / (1.0 - p))
    return max(out, 0.0)


def kl_inverse_upper(q: float, c: float, *, tol: float = 1e-12) -> float:
    """kl^{-1}(q, c) = max { p in [q, 1] : kl(q || p) <= c }, by bisection.

    The upper inverse of the Bernoulli relative entropy used by the Langford-Seeger
    bound (Langford & Seeger 2001; Seeger 2002; Langford 2005, Section 4).
    kl(q || .) is continuous and increasing on [q, 1], from 0 at p = q to infinity at
    p = 1 (for q < 1), so bisection on [q, 1] finds the crossing kl(q || p) = c. The
    upper end of the final bracket is returned: it is at least the crossing and within
    ``tol`` of it, so rounding never makes the bound optimistic.
    Edge cases: c = 0 gives q; q = 1 gives 1; q = 0 gives 1 - exp(-c).
    """
    q = _check_fraction("q", q)
    c = check_real("c", c, minimum=0.0)
    if q >= 1.0:
        return 1.0
    if c == 0.0:
        return q
    lo, hi = q, 1.0  # kl(q || 1) is infinite for q < 1, so the crossing is inside
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if kl_bernoulli(q, mid) > c:
            hi = mid
        else:
            lo = mid
    return hi


def occam_kl_bound(train_error: float, code_bits: float, m: int, delta: float = 0.05,
                   n_choices: int = 1) -> float:
    """The (Occam-kl) bound: kl^{-1}(train_error, (bits ln 2 + ln(1/delta) + ln N) / m).

    ``code_bits`` is the length of the network's codeword in a prefix-free code fixed
    before the sample (8 * len(bytes) for :func:`prunebounds.coding.encode`),
    ``n_choices`` = N the number of alternatives chosen among after seeing the sample
    that the code does not record (see the module docstring). Langford (2005),
    Section 4 (kl form); Zhou et al. (2019), their compression bound with a point-mass
    posterior.
    """
    q = _check_fraction("train_error", train_error)
    bits = check_real("code_bits", code_bits, minimum=0.0)
    m = check_m(m)
    delta = check_delta(delta)
    n = check_int("n_choices", n_choices, minimum=1)
    return kl_inverse_upper(q, (bits * LN2 + math.log(1.0 / delta) + math.log(n)) / m)


def bits_for_bound(train_error: float, target: float, m: int, delta: float = 0.05,
                   n_choices: int = 1) -> float:
    """The longest code (in bits) whose (Occam-kl) bound is at most ``target``.

    Inverts :func:`occam_kl_bound` in the code length: (m kl(q || target) - ln(1/delta)
    - ln N) / ln 2, negative when no code is short enough (target <= q gives kl = 0).
    With target = 1 - 1e-12 it is, in effect, the break-even length beyond which the
    bound is vacuous.
    """
    q = _check_fraction("train_error", train_error)
    target = _check_fraction("target", target)
    m = check_m(m)
    delta = check_delta(delta)
    n = check_int("n_choices", n_choices, minimum=1)
    kl = kl_bernoulli(q, target) if target > q else 0.0
    return (m * kl - math.log(1.0 / delta) - math.log(n)) / LN2


@dataclass(frozen=True)
class Certificate:
    """A certified network: its code, the bound, and what went into it.

    Attributes:
        bound: the upper bound on the error probability (holds with prob. 1 - delta).
        train_error: error rate of the decoded network on the m bound samples (NaN
            when :func:`certify` skipped it because the bound is vacuous anyway).
        test_error: its error rate on the test set (measured, not used by the bound);
            ``None`` if no test set was given.
        m: number of samples the training error was measured on.
        delta: failure probability.
        n_choices: alternatives paid by a union bound (ln N nats).
        code_bits: 8 * len(code).
        complexity: (code_bits ln 2 + ln(1/delta) + ln N) / m, the right side.
        breakdown: the code's segment lengths in bits.
        n_kept: kept weights of the decoded network.
    """

    bound: float
    train_error: float
    test_error: float | None
    m: int
    delta: float
    n_choices: int
    code_bits: int
    complexity: float
    breakdown: coding.CodeLength
    n_kept: int

    @property
    def vacuous(self) -> bool:
        """True when the bound says nothing (at least :data:`VACUOUS_AT`)."""
        return self.bound >= VACUOUS_AT

    @property
    def train_error_measured(self) -> bool:
        return not math.isnan(self.train_error)


def check_not_below_test_error(bound: float, test_error: float) -> None:
    """Raise if a bound is below the measured test error: that means a mistake.

    A bound that holds with probability 1 - delta can in principle fall below the true
    error; below the *measured* test error of the very network it certifies it signals
    a bug (training error measured on a different network than the coded one, a code
    length that is not the real length, a test set used for training) far more often.
    """
    bound = check_real("bound", bound, minimum=0.0)
    test_error = _check_fraction("test_error", test_error)
    if bound < test_error:
        raise ParameterError(
            f"the bound {bound:.4f} is below the measured test error {test_error:.4f} of "
            "the network it certifies: this is a mistake, not a result; check that the "
            "training error is measured on the decoded network and that the code length "
            "is the length of the bytes")


def certify(model: nn.Module, spec: coding.CodeSpec, X: torch.Tensor, y: torch.Tensor, *,
            delta: float = 0.05, n_choices: int = 1, X_test: torch.Tensor | None = None,
            y_test: torch.Tensor | None = None, skip_vacuous: bool = False) -> Certificate:
    """Encode ``model``, decode it, check the round trip, and bound its error.

    The round trip is checked by :func:`prunebounds.coding.verify_roundtrip`: the
    decoded network must have the quantised network's weights and biases bit for bit
    and the same prediction on every row of ``X_test`` (of ``X`` when no test set is
    given). The training error is measured on the *decoded* network over all of ``X``
    (m = len(X), e.g. all 60,000 MNIST training images); the bound is
    :func:`occam_kl_bound` with the real code length.

    ``skip_vacuous=True``: when even a training error of 0 gives a bound of at least
    :data:`VACUOUS_AT` (the code is too long for any training error to matter), the
    training error is not measured (NaN, which saves a forward pass over X) and the
    bound reported is that value at training error 0, a lower bound on the bound.

    Raises:
        ParameterError: bad spec, delta or m (an empty ``X``), an empty layer, a round
            trip that changes a weight or a prediction, or a bound below the measured
            test error.
    """
    delta = check_delta(delta)
    m = check_m(len(X))
    n_choices = check_int("n_choices", n_choices, minimum=1)
    code = coding.encode(model, spec)
    coding.verify_roundtrip(model, spec, X if X_test is None else X_test, code=code)
    decoded = coding.decode(code)
    bits = 8 * len(code)
    complexity = (bits * LN2 + math.log(1.0 / delta) + math.log(n_choices)) / m
    floor = occam_kl_bound(0.0, bits, m, delta, n_choices)
    if skip_vacuous and floor >= VACUOUS_AT:
        train_error, bound = math.nan, floor
    else:
        train_error = model_error_rate(decoded, X, y)
        bound = occam_kl_bound(train_error, bits, m, delta, n_choices)
    test_error = None
    if X_test is not None and y_test is not None:
        test_error = model_error_rate(decoded, X_test, y_test)
        check_not_below_test_error(bound, test_error)
    n_kept = sum(int((layer.weight != 0).sum()) for layer in coding.coded_layers(decoded))
    return Certificate(bound, train_error, test_error, m, delta, n_choices, bits, complexity,
                       coding.code_length_breakdown(code), n_kept)
