"""The reviewers chapter's module: compute in the smoke profile, its claims, its answers."""

from __future__ import annotations

import math

import pytest
import torch

from prunebounds import claims as cl
from prunebounds import models, profiles, pruning, random_matrices, scaling
from prunebounds.chapters import reviewers as chapter
from prunebounds.errors import ParameterError

#: The claim ids of the chapter's transitional cell (kept), and the new ones.
IDS = {"rev-q1-gaussian", "rev-q2-deterministic", "rev-q3-rmt-gain", "rev-q5-depth",
       "rev-q6-width", "rev-q2-random", "rev-q3-measured-gain"}


@pytest.fixture(scope="module")
def R(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PRUNEBOUNDS_CACHE", str(tmp_path_factory.mktemp("cache")))
    try:
        yield chapter.compute(profiles.resolve("smoke"), progress=False)
    finally:
        mp.undo()


def test_result_shape(R):
    s = chapter.SIZES["smoke"]
    assert R.profile == "smoke" and R.ds == tuple(s["ds"])
    assert len(R.rules) == len(s["ds"]) * len(scaling.RULES)
    assert [m.widths[1] for m in R.width] == list(s["widths"])
    assert [m.depth for m in R.depth] == list(s["depths"])
    assert len(R.student) == len(chapter.STUDENT_DFS) and R.student[-1].df is None


def test_claims_are_judged_at_a_d_every_profile_computes():
    assert all(chapter.CLAIM_D in s["ds"] for s in chapter.SIZES.values())
    assert set(chapter.SIZES) == set(profiles.PROFILES)


def test_cached_result_is_read_back_equal(R, monkeypatch, tmp_path):
    # the module fixture's cache: a second call reads the stored result, field for field
    again = chapter.compute(profiles.resolve("smoke"), progress=False)
    assert again == R


def test_rules_share_the_sparsity_and_kept_is_of_all_weights(R):
    for d in R.ds:
        rows = [chapter.rule_at(R, rule, d) for rule in scaling.RULES]
        assert len({r.nnz for r in rows}) == 1          # equal sparsity, every rule
        n_weights = sum(a * b for a, b in R.shapes)
        assert rows[0].kept == pytest.approx(rows[0].nnz / n_weights)
    # more pruning at larger d (the rule's masks are nested in d for one seed)
    kept = [chapter.rule_at(R, "paper", d).kept for d in R.ds]
    assert kept == sorted(kept, reverse=True)


def test_magnitude_pruning_leaves_the_smallest_error_norm(R):
    # removing exactly the smallest weights of each layer gives the smallest ||Delta||_F
    for d in R.ds:
        fro = {rule: sum(f * f for f in chapter.rule_at(R, rule, d).delta_fro) for rule in scaling.RULES}
        assert fro["magnitude"] <= fro["paper"] + 1e-9 and fro["magnitude"] <= fro["random"] + 1e-9
        for r in (chapter.rule_at(R, rule, d) for rule in scaling.RULES):
            assert all(f >= s - 1e-9 for f, s in zip(r.delta_fro, r.delta_norms))  # ||.||_F >= ||.||_2


def test_gaussian_law_reproduces_the_paper_formulas(R):
    g = R.student[-1]
    assert all(x == pytest.approx(1.0) for x in g.keep_ratio + g.m2_ratio)
    assert g.keep == pytest.approx(pruning.expected_keep_fraction(chapter.STUDENT_D), rel=1e-8)
    assert g.mc_keep == pytest.approx(g.keep, abs=0.02)  # one Monte Carlo matrix


def test_provable_gains_match_the_random_matrix_module(R):
    g = chapter.gain(R, 784, 1.0)
    b = random_matrices.pruning_error_norm_bounds(784, 784, 1.0, 1.0)
    assert g.provable == pytest.approx(b.bvh_symmetric / b.asymptotic)
    assert g.frobenius == pytest.approx(14.0)            # sqrt(784 * 784) / (2 sqrt(784))
    # the provable bound loses at 784 and wins at 2000 (the crossover lies between)
    assert g.provable > g.frobenius and chapter.gain(R, 2000, 1.0).provable < chapter.gain(R, 2000, 1.0).frobenius


def test_iid_frobenius_ratio_against_a_random_matrix():
    torch.manual_seed(0)
    X = torch.randn(400, 100, dtype=torch.float64)
    measured = float(torch.linalg.norm(X) / torch.linalg.matrix_norm(X, ord=2))
    assert chapter.iid_frobenius_ratio((400, 100)) == pytest.approx(measured, rel=0.05)
    assert chapter.iid_frobenius_ratio((784, 784)) == pytest.approx(14.0)


def test_family_factors_multiply_to_the_needed_margin(R):
    for m in R.width + R.depth:
        prod = m.e_times_b * m.product_of_norms * m.sum_of_ratios * m.product_of_gammas
        assert m.needed == pytest.approx(prod, rel=1e-12)
        assert m.nnz < m.n_weights and 0.0 <= m.test_error <= 1.0
    assert [m.n_weights for m in R.width] == sorted(m.n_weights for m in R.width)


def test_family_config_reuses_the_main_network():
    P = profiles.resolve("smoke")
    main = chapter.family_config(P, models.resolve_widths(P.arch))
    assert main.key == chapter.runs.RunConfig.from_profile(P).key   # epochs equal in smoke
    other = chapter.family_config(P, (784, 16, 16, 10))
    assert other.epochs == chapter.SIZES["smoke"]["family_epochs"] and other.snapshot_epochs == ()


def test_depth_rates_and_slopes_against_hand_computation(R):
    a, b = R.depth[0], R.depth[-1]
    rate = (b.needed / a.needed) ** (1 / (b.depth - a.depth))
    assert chapter.depth_rates(R)["needed"] == pytest.approx(rate)
    h = chapter.SIZES["smoke"]["widths"]
    x, y = [math.log(v) for v in h], [math.log(m.n_weights) for m in R.width]
    mx, my = sum(x) / len(x), sum(y) / len(y)
    slope = sum((u - mx) * (v - my) for u, v in zip(x, y)) / sum((u - mx) ** 2 for u in x)
    assert chapter.slopes(R)["n_weights"] == pytest.approx(slope)


def test_claims_are_valid_records(R):
    records = chapter.claims(R)
    assert {c.id for c in records} == IDS
    for c in records:
        assert c.verdict in cl.VERDICTS and c.chapter == chapter.LABEL and c.origin == "reviewer"
    assert [c.id for c in cl.loads(cl.dumps(records, profile="smoke"))] == [c.id for c in records]
    # the provable bound at n = 784 is worse than Frobenius whatever the network: not a caveat
    assert {c.id: c for c in records}["rev-q3-rmt-gain"].verdict == cl.FAILS


def test_numbers_are_finite_where_the_text_quotes_them(R):
    n = chapter.numbers(R)
    for k, v in n.items():
        assert isinstance(v, (int, float, str)), k
        if isinstance(v, float):
            assert math.isfinite(v), k


def test_answers_have_one_line_per_claim_and_a_verdict_each(R):
    rows = chapter.answers(chapter.claims(R))
    n_claims = sum(len(ids) for _, ids in chapter.QUESTIONS)
    assert len(rows) == n_claims and all(len(r) == 4 for r in rows)
    assert sum(1 for r in rows if r[0]) == 8                          # the eight questions
    own = {c.id for c in chapter.claims(R)}
    for r in rows:
        cid = r[1].split("`")[1].rstrip("?")
        assert r[1].endswith("?`") == (cid not in own)                 # others' claims optional
    assert own <= {r[1].split("`")[1] for r in rows}                   # every own claim shown


def test_bad_family_d_is_rejected():
    with pytest.raises(ParameterError, match="family_d"):
        chapter.compute(profiles.resolve("smoke"), family_d=-1.0, progress=False)


def test_compare_rules_on_a_tiny_network():
    net = models.build((20, 16, 3), seed=0)
    X, y = torch.randn(60, 20), torch.randint(0, 3, (60,))
    split = chapter.data.Split(X, y)
    D = chapter.data.DataBundle("synthetic", split, split, split, (20,), 3)
    rows = chapter.compare_rules(net, D, [0.5], seed=0)
    assert [r.rule for r in rows] == list(scaling.RULES)
    # the needed margin is the authors' formula on the measured norms
    W = [w.double() for w in models.weight_matrices(net)]
    g = pruning.prune_paper(net, 0.5, 0)
    nm = chapter.perturbation.needed_margin(W, models.weight_matrices(g),
                                            chapter.max_input_norm(X), 60)
    assert rows[0].needed == pytest.approx(nm.value, rel=1e-9)
