"""The bound chapter's module: compute in the smoke profile, claims, and the three chains."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from prunebounds import claims as cl
from prunebounds import profiles, sparsity
from prunebounds.chapters import generalization_bound as chapter

IDS = {"d-star", "thm-5-2-bound", "thm-5-2-failure", "baselines", "bound-tracks-generalization"}


@pytest.fixture(scope="module")
def R(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBOUNDS_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield chapter.compute(profiles.resolve("smoke"), progress=False)
    finally:
        mp.undo()


def test_claims_are_valid_records(R):
    records = chapter.claims(R)
    assert {c.id for c in records} == IDS
    for c in records:
        assert c.verdict in cl.VERDICTS and c.chapter == chapter.LABEL
    thm = next(c for c in records if c.id == "thm-5-2-bound")
    assert {"bound_paper", "test_g"} <= {v.name for v in thm.measured}  # the preface quotes them
    assert len(cl.loads(cl.dumps(records))) == len(records)


def test_numbers_are_finite(R):
    n = chapter.numbers(R)
    bad = {k for k, v in n.items() if not isinstance(v, str) and math.isnan(v)}
    assert bad <= {"bound_sweep_loss_one"}   # undefined when the loss never reaches 1


def test_each_version_fits_its_margin_at_its_d_star(R):
    pq = R.main.percentile
    assert pq.gamma > 0
    assert pq.authors.eps <= pq.gamma * (1 + 1e-9)                     # eps_A(d*) <= gamma
    assert math.sqrt(2) * pq.chain.eps <= pq.gamma * (1 + 1e-9) and pq.chain.condition
    assert math.sqrt(2) * pq.provable.eps <= pq.gamma * (1 + 1e-9) and pq.provable.condition
    for p in (pq.authors, pq.chain, pq.provable):
        assert 0.0 <= p.d_star <= 10.0 and 0.0 < p.kept <= 1.0
    m = R.main.minimum
    if m.gamma <= 0:
        assert m.authors.d_star == m.chain.d_star == m.provable.d_star == 0.0


def test_paper_bound_is_its_formula(R):
    M = R.main
    b = M.percentile.chain.bound
    q = sum(s.size.n_params for s in M.sketch)
    loss = b.terms["empirical_margin_loss"]
    expected = loss + math.sqrt((q * math.log(M.r) + math.log(1 / M.delta)) / (2 * M.m))
    assert b.value == pytest.approx(expected, rel=1e-12)


def test_failure_budget_and_tradeoff(R):
    M = R.main
    b = M.budget
    assert b.total == pytest.approx(b.markov + b.lemma51 + b.discretization + b.delta)
    assert b.markov == M.failure and b.lemma51 == pytest.approx(sum(b.lemma51_layers))
    L = len(M.sketch)
    lams = [t.lam for t in M.tradeoff]
    assert lams == pytest.approx([L / t.failure for t in M.tradeoff])
    conds = [t.d_condition for t in M.tradeoff]   # failures in decreasing order
    assert all(a >= b for a, b in zip(conds, conds[1:]))
    assert all(t.d_star <= t.d_condition for t in M.tradeoff)


def test_lemma51_failure_counts_every_line():
    sizes, fails = chapter.lemma51_sketches([(10, 784), (784, 784)], keep=0.3, lam=50.0)
    assert fails[0] == pytest.approx(10 * (1 / 50 + 784 ** (-1 / 3)) + 784 * (1 / 50 + 10 ** (-1 / 3)))
    assert fails[1] == pytest.approx(2 * 784 * (1 / 50 + 784 ** (-1 / 3)))
    bound, _ = sparsity.lemma51_bound(784, 0.3, 50.0, kind="markov-chebyshev")
    assert sizes[1].j == math.ceil(bound)


def test_kendall_tau_of_the_family(R):
    F = R.family
    test = [m.test_err for m in F.members]
    gap = [m.test_err - m.train_err for m in F.members]
    for t in F.taus:
        vals = [m.values[t.name] for m in F.members]
        ref = stats.kendalltau(vals, test).statistic
        assert (math.isnan(ref) and math.isnan(t.tau_error)) or t.tau_error == pytest.approx(ref)
        ref_gap = stats.kendalltau(vals, gap).statistic
        assert (math.isnan(ref_gap) and math.isnan(t.tau_gap)) or t.tau_gap == pytest.approx(ref_gap)
    assert len(F.members) == (len(F.spec.hidden) * len(F.spec.train_sizes) * len(F.spec.optimisers)
                              * len(F.spec.seeds) * len(F.spec.epochs))
    assert all(m.gamma > 0 for m in F.members)


def test_positive_q_takes_the_first_positive_percentile():
    import torch

    mg = torch.tensor(np.linspace(-0.2, 0.8, 101))   # 10th percentile -0.1, 25th +0.05
    assert chapter.positive_q([mg], 5.0) == 25.0
    assert chapter.positive_q([mg + 1.0], 5.0) == 5.0
    with pytest.raises(Exception, match="median training margin"):
        chapter.positive_q([torch.full((10,), -1.0)], 5.0)


def test_break_even_d():
    d = chapter.break_even_d(784)
    from prunebounds import pruning
    assert float(pruning.expected_keep_fraction(d)) == pytest.approx(1 / math.log(784) ** 2)
    assert 40 < d < 50
