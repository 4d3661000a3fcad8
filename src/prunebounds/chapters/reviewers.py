"""Chapter "What the reviewers asked" (``notebooks/reviewers.md``).

Everything the chapter measures for the reviewers' questions, as one cached
:class:`ReviewersResult`:

* Q1: the excess kurtosis of the main network's layers, and the paper's rule
  (:prf:ref:`def-pruning-rule` of the pruning chapter) under Student-t weights of equal
  variance, exactly by quadrature and by one Monte Carlo draw (:class:`StudentLaw`);
* Q2-Q4, Q7: the main network pruned by the paper's rule, by deterministic magnitude
  pruning and by random pruning at the same per-layer sparsity (:class:`RuleRow`):
  the authors' needed margin, the spectral and Frobenius norms of each layer's error,
  the largest change of the correct-class logit over the test set, the test error, the
  sketch size and the all-zero rows;
* Q3: the provable (Bandeira-van Handel, symmetric) and the Frobenius bound on the
  pruning error's spectral norm for square layers of the paper's widths
  (:class:`ProvableGain`);
* Q5-Q6: small networks of several widths and depths, trained as the profile says
  (:data:`SIZES`), pruned at one d, with every factor of the authors' needed margin
  (:class:`FamilyMember`).

Kept fractions are those of the whole network: kept weights over all weights of the
pruned (linear) layers. Everything runs on the profile's device
(:func:`prunebounds.devices.resolve_device`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import cache, data, gaussianity, margins, models, perturbation, pruning, runs, scaling
from .. import random_matrices as rm
from ..claims import Claim, Value, criteria
from ..devices import resolve_device
from ..norms import max_input_norm, spectral_norms
from ..profiles import Profile
from ..sketching import sketch_sizes
from ..validate import check_real

LABEL = "chap-reviewers"
REQUIRES: tuple[str, ...] = ()

#: Sizes that are not fields of the profile, per profile: the values of d of the rule
#: comparison; the width family (``widths`` at depth ``width_depth``, i.e. that many
#: weight matrices) and the depth family (``depths`` at width ``depth_width``); the
#: family's training epochs (``None``: the profile's) and training-set cap.
SIZES = {
    "smoke": dict(ds=(0.1, 1.0), widths=(16, 32, 64), width_depth=3, depth_width=32,
                  depths=(2, 3, 4), family_epochs=2, family_max_train=None),
    "quick": dict(ds=(0.1, 1.0, 10.0), widths=(50, 100, 200, 400), width_depth=3, depth_width=100,
                  depths=(2, 3, 4, 5), family_epochs=5, family_max_train=None),
    "full": dict(ds=(0.1, 0.5, 1.0, 2.0, 5.0, 10.0), widths=(196, 392, 784, 1568),
                 width_depth=5, depth_width=784, depths=(2, 3, 4, 5, 6), family_epochs=None,
                 family_max_train=None),
}
#: The d at which the rules are judged (Q2 claims): in every profile's ``ds``, and the
#: paper's rule keeps about 42% of the weights there, while at d = 10 (9%) it leaves
#: plain-SGD networks near chance, so that a comparison there says little.
CLAIM_D = 1.0
#: Degrees of freedom of the Student-t laws (``None``: the Gaussian), the d of their
#: table and the grid of d of their figure.
STUDENT_DFS = (3.0, 5.0, 10.0, None)
STUDENT_D = 1.0
STUDENT_GRID = tuple(float(x) for x in np.geomspace(1e-2, 10.0, 25))
#: The family is pruned at this d (the notebook's ``scaling_d``) and compared with
#: this percentile of its training margins (the median).
FAMILY_D, FAMILY_Q = 1.0, 50.0
#: Square widths n and values of d of the provable-versus-Frobenius comparison
#: (the paper's MNIST and CIFAR-10 widths).
PAPER_WIDTHS, GAIN_DS = (784, 2000), (1.0, 10.0)
#: The reviewers' questions, each with the claims that answer it (claims of other
#: chapters are named with their chapter's label).
QUESTIONS = (
    ("1. Are trained weights Gaussian? What if not?", (("rev-q1-gaussian", LABEL),)),
    ("2. Why a Bernoulli mask? Deterministic and random pruning?",
     (("rev-q2-deterministic", LABEL), ("rev-q2-random", LABEL))),
    ("3. What does random-matrix theory gain over Frobenius?",
     (("rev-q3-rmt-gain", LABEL), ("rev-q3-measured-gain", LABEL))),
    ("4. Does sketching beat sparse storage?", (("rev-q4-sketch-storage", "chap-sketching"),)),
    ("5. How does the bound grow with depth?", (("rev-q5-depth", LABEL),)),
    ("6. How does it scale with width?", (("rev-q6-width", LABEL),)),
    ("7. Dead neurons, iterative pruning, CNNs?",
     (("rev-q7-dead-neurons", "chap-sparsity-pattern"),)),
    ("8. Larger models and data sets?", (("rev-q8-larger-models", "chap-beyond-mlps"),)),
)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class StudentLaw:
    """The paper's rule under one law of the weights (variance 1)."""

    df: float | None                  # degrees of freedom; None: the Gaussian
    keep_ratio: tuple[float, ...]     # over STUDENT_GRID: kept fraction / the Gaussian's
    m2_ratio: tuple[float, ...]       # E Delta^2 / the Gaussian's
    keep: float                       # at STUDENT_D, exact (quadrature)
    m2: float
    mc_keep: float                    # at STUDENT_D, one Monte Carlo matrix
    mc_m2: float
    mc_norm: float                    # its ||Delta||_2


@dataclass(frozen=True)
class RuleRow:
    """One (d, rule) of the rule comparison on the main network."""

    d: float
    rule: str                         # "paper", "magnitude" or "random"
    kept: float                       # kept weights / all weights of the pruned layers
    delta_norms: tuple[float, ...]    # ||Delta^l||_2
    delta_fro: tuple[float, ...]      # ||Delta^l||_F
    needed: float                     # the authors' needed margin
    test_change: float                # max over the test set of |change of the correct logit|
    test_error: float
    nnz: int
    q: float                          # sketch size sum_l k_out k_in (c = 1)
    dead_rows: int                    # all-zero rows of the weight matrices


@dataclass(frozen=True)
class ProvableGain:
    """Bounds on E||Delta||_2 of an n x n layer of i.i.d. Gaussian weights pruned at d."""

    n: int
    d: float
    provable: float                   # symmetric Bandeira-van Handel bound / large-n value
    frobenius: float                  # Frobenius bound / large-n value


@dataclass(frozen=True)
class FamilyMember:
    """One network of the width or depth family, pruned by the paper's rule at d."""

    widths: tuple[int, ...]
    depth: int                        # number of weight matrices
    needed: float                     # the authors' needed margin ...
    e_times_b: float                  # ... and its factors
    product_of_norms: float
    sum_of_ratios: float
    product_of_gammas: float
    gamma: float                      # the FAMILY_Q-th percentile of the training margins
    train_error: float
    test_error: float
    q: float                          # sketch size (c = 1)
    n_weights: int
    nnz: int


@dataclass(frozen=True)
class ReviewersResult:
    """Everything the chapter shows (see the module docstring)."""

    profile: str
    epochs: int
    optimiser: str
    device: str
    n_test: int
    test_error: float                 # the unpruned main network
    margin_q: float
    gamma: float                      # its margin_q-th percentile training margin
    shapes: tuple[tuple[int, int], ...]
    kurtosis: tuple[float, ...]
    student_shape: tuple[int, int]
    student: tuple[StudentLaw, ...]
    ds: tuple[float, ...]
    rules: tuple[RuleRow, ...]
    gains: tuple[ProvableGain, ...]
    family_d: float
    family_epochs: int
    family_max_train: int | None
    width_depth: int
    depth_width: int
    width: tuple[FamilyMember, ...]
    depth: tuple[FamilyMember, ...]


# --------------------------------------------------------------------------- the pieces
def student_laws(shape: tuple[int, int], seed: int) -> tuple[StudentLaw, ...]:
    """The rule under each law of :data:`STUDENT_DFS` (:func:`prunebounds.scaling.student_t_rule`
    over :data:`STUDENT_GRID`; one Monte Carlo matrix of ``shape`` at :data:`STUDENT_D`)."""
    nus = [math.inf if df is None else df for df in STUDENT_DFS]
    exact = {nu: [scaling.student_t_rule(nu, d) for d in STUDENT_GRID] for nu in nus}
    out = []
    for df, nu in zip(STUDENT_DFS, nus):
        at = scaling.student_t_rule(nu, STUDENT_D)
        mc = scaling.student_t_monte_carlo(nu, STUDENT_D, shape, seed=seed)
        out.append(StudentLaw(
            df=df, keep_ratio=tuple(t.keep / g.keep for t, g in zip(exact[nu], exact[math.inf])),
            m2_ratio=tuple(t.m2 / g.m2 for t, g in zip(exact[nu], exact[math.inf])),
            keep=at.keep, m2=at.m2, mc_keep=mc.keep, mc_m2=mc.m2, mc_norm=mc.delta_norm))
    return tuple(out)


def _kept_and_counts(Wg: list[torch.Tensor]) -> tuple[float, int, int]:
    """Kept fraction of all weights, non-zeros, all-zero rows of the matrices ``Wg``."""
    nnz = sum(int(torch.count_nonzero(w)) for w in Wg)
    dead = sum(int((w.abs().sum(dim=1) == 0).sum()) for w in Wg)
    return nnz / sum(w.numel() for w in Wg), nnz, dead


def compare_rules(net: torch.nn.Module, D: data.DataBundle, ds, seed: int,
                  progress: bool = False) -> tuple[RuleRow, ...]:
    """The three rules of :func:`prunebounds.scaling.pruned_by_rules` at each d.

    For each pruned copy: the authors' needed margin
    (:func:`prunebounds.perturbation.needed_margin_from_norms`, B and m of the training
    set), ||Delta^l||_2 and ||Delta^l||_F, and, from one forward pass over the test set,
    the test error and the largest change of the correct-class logit. ``net`` and ``D``
    must be on the same device.
    """
    W = [w.detach().to(torch.float64) for w in models.weight_matrices(net)]
    shapes = [tuple(w.shape) for w in W]
    w_norms = spectral_norms(W)
    B, m = max_input_norm(D.train.X), len(D.train)
    ref = margins.logits(net, D.test.X).to(torch.float64)
    rows = []
    jobs = [(d, rule, g) for d in ds for rule, g in scaling.pruned_by_rules(net, d, seed).items()]
    for d, rule, g in tqdm(jobs, desc="pruning rules", disable=not progress):
        Wg = [w.detach().to(torch.float64) for w in models.weight_matrices(g)]
        delta = [a - b for a, b in zip(W, Wg)]
        dn = spectral_norms(delta)
        nm = perturbation.needed_margin_from_norms(w_norms, dn, shapes, B, m)
        out = margins.logits(g, D.test.X).to(torch.float64)
        change = perturbation.output_change(None, g, D.test.X, D.test.y, reference_logits=ref)
        kept, nnz, dead = _kept_and_counts(Wg)
        rows.append(RuleRow(
            d=float(d), rule=rule, kept=kept, delta_norms=tuple(dn),
            delta_fro=tuple(float(torch.linalg.norm(x)) for x in delta), needed=nm.value,
            test_change=change.max_correct_logit_change,
            test_error=margins.error_rate(out, D.test.y), nnz=nnz,
            q=float(sum(s.n_params for s in sketch_sizes(Wg))), dead_rows=dead))
    return tuple(rows)


def provable_gains() -> tuple[ProvableGain, ...]:
    """:func:`prunebounds.random_matrices.pruning_error_norm_bounds` at the paper's widths,
    each bound divided by the large-matrix value sigma (sqrt(n) + sqrt(n))."""
    out = []
    for n in PAPER_WIDTHS:
        for d in GAIN_DS:
            b = rm.pruning_error_norm_bounds(n, n, d, 1.0)
            out.append(ProvableGain(n=n, d=d, provable=b.bvh_symmetric / b.asymptotic,
                                    frobenius=b.frobenius / b.asymptotic))
    return tuple(out)


def family_config(P: Profile, widths: tuple[int, ...]) -> runs.RunConfig:
    """The run of one family member: the profile's main network when ``widths`` are its
    widths and the family trains as long as it does, else a network of ``widths``
    trained for the family's epochs (:data:`SIZES`), without snapshots."""
    s = SIZES[P.name]
    epochs = s["family_epochs"] or P.epochs
    main = runs.RunConfig.from_profile(P)
    if tuple(widths) == main.widths and epochs == P.epochs and s["family_max_train"] == P.max_train:
        return main
    return runs.RunConfig.from_profile(P, widths=tuple(widths), epochs=epochs,
                                       max_train=s["family_max_train"])


def family_member(cfg: runs.RunConfig, d: float, seed: int,
                  device: torch.device) -> FamilyMember:
    """Train (cached) the network ``cfg``, prune it by the paper's rule at d, and return the
    factors of the authors' needed margin with the network's margin and errors."""
    net = runs.train_cached(cfg, progress=False).model.to(device)
    D = data.load(cfg.dataset, train_fraction=cfg.train_fraction,
                  max_train=cfg.max_train).to(device)
    g = pruning.prune_paper(net, d, seed)
    W, Wg = models.weight_matrices(net), models.weight_matrices(g)
    nm = perturbation.needed_margin(W, Wg, max_input_norm(D.train.X), len(D.train))
    out = margins.logits(net, D.train.X)
    _, nnz, _ = _kept_and_counts(Wg)
    return FamilyMember(
        widths=tuple(cfg.widths), depth=len(W), needed=nm.value, e_times_b=nm.e_times_b,
        product_of_norms=nm.product_of_norms, sum_of_ratios=nm.sum_of_ratios,
        product_of_gammas=nm.product_of_gammas,
        gamma=margins.margin_percentile(margins.margins(out, D.train.y), FAMILY_Q),
        train_error=margins.error_rate(out, D.train.y),
        test_error=margins.model_error_rate(net, D.test.X, D.test.y),
        q=float(sum(s.n_params for s in sketch_sizes(Wg))),
        n_weights=int(sum(w.numel() for w in W)), nnz=nnz)


# --------------------------------------------------------------------------- compute
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def compute(P: Profile, *, family_d: float | None = None,
            progress: bool = True) -> ReviewersResult:
    """Everything the chapter shows for profile ``P`` (cached; see the module docstring).

    ``family_d`` (default :data:`FAMILY_D`) is the d at which the width and depth
    families are pruned, in (0, 10].
    """
    fd = FAMILY_D if family_d is None else check_real("family_d", family_d, minimum=1e-6,
                                                       maximum=10.0)
    cfg = runs.RunConfig.from_profile(P)
    config = dict(run=cfg.key, profile=P.name, dataset=P.dataset, max_train=P.max_train,
                  seed=P.seed, margin_q=P.margin_q, epochs=P.epochs, sizes=SIZES[P.name],
                  family_d=fd, family=[family_config(P, w).key for w in _family_widths(P)],
                  chapter=_source_hash())
    return cache.cached_result("chapter-reviewers", config,
                               lambda: _compute(P, cfg, fd, progress), ReviewersResult)


def _family_widths(P: Profile) -> list[tuple[int, ...]]:
    s = SIZES[P.name]
    full = models.resolve_widths(P.arch)
    n_in, n_out = full[0], full[-1]
    width = [(n_in, *[h] * (s["width_depth"] - 1), n_out) for h in s["widths"]]
    depth = [(n_in, *[s["depth_width"]] * (L - 1), n_out) for L in s["depths"]]
    return width + depth


def _compute(P: Profile, cfg: runs.RunConfig, family_d: float,
             progress: bool) -> ReviewersResult:
    s, device = SIZES[P.name], resolve_device(P.device)
    net = runs.train_cached(cfg, progress=progress).model.to(device)
    D = data.load(P.dataset, max_train=P.max_train).to(device)
    W = models.weight_matrices(net)
    m_train = margins.margins(margins.logits(net, D.train.X), D.train.y)
    shape = tuple(W[1].shape) if len(W) > 1 else tuple(W[0].shape)
    rules = compare_rules(net, D, s["ds"], P.seed, progress)
    members = [family_member(family_config(P, w), family_d, P.seed, device)
               for w in tqdm(_family_widths(P), desc="width/depth family", disable=not progress)]
    n_w = len(s["widths"])
    return ReviewersResult(
        profile=P.name, epochs=P.epochs, optimiser=P.optimiser, device=str(device), n_test=len(D.test),
        test_error=margins.model_error_rate(net, D.test.X, D.test.y), margin_q=P.margin_q,
        gamma=margins.margin_percentile(m_train, P.margin_q),
        shapes=tuple(tuple(w.shape) for w in W),
        kurtosis=tuple(gaussianity.excess_kurtosis(w.cpu()) for w in W),
        student_shape=shape, student=student_laws(shape, P.seed), ds=tuple(s["ds"]),
        rules=rules, gains=provable_gains(), family_d=family_d,
        family_epochs=s["family_epochs"] or P.epochs, family_max_train=s["family_max_train"],
        width_depth=s["width_depth"], depth_width=s["depth_width"],
        width=tuple(members[:n_w]), depth=tuple(members[n_w:]))


# --------------------------------------------------------------------------- derived numbers
def rule_at(R: ReviewersResult, rule: str, d: float) -> RuleRow:
    """The row of ``rule`` at ``d`` of the rule comparison."""
    return next(r for r in R.rules if r.rule == rule and r.d == d)


def gain(R: ReviewersResult, n: int, d: float) -> ProvableGain:
    """The provable-versus-Frobenius comparison at width ``n`` and ``d``."""
    return next(g for g in R.gains if g.n == n and g.d == d)


def frobenius_ratios(R: ReviewersResult, rule: str = "paper") -> list[tuple[float, float, float]]:
    """(d, min, max) over the layers of ||Delta^l||_F / ||Delta^l||_2 for ``rule``."""
    out = []
    for r in (r for r in R.rules if r.rule == rule):
        ratio = [f / s for f, s in zip(r.delta_fro, r.delta_norms) if s > 0]
        out.append((r.d, min(ratio), max(ratio)))
    return out


def iid_frobenius_ratio(shape: tuple[int, int]) -> float:
    """sqrt(d1 d2) / (sqrt(d1) + sqrt(d2)): ||X||_F / ||X||_2 for a large d1 x d2 matrix of
    i.i.d. mean-zero entries (Frobenius norm sigma sqrt(d1 d2), spectral norm about
    sigma (sqrt(d1) + sqrt(d2)), Latala 2005 / Bandeira-van Handel 2016)."""
    d1, d2 = shape
    return math.sqrt(d1 * d2) / (math.sqrt(d1) + math.sqrt(d2))


def slopes(R: ReviewersResult) -> dict[str, float]:
    """Log-log slopes against the width h of the needed margin, its factors, q and the
    number of weights (:func:`prunebounds.scaling.loglog_slope`)."""
    h = SIZES[R.profile]["widths"]
    keys = ("needed", "product_of_norms", "sum_of_ratios", "product_of_gammas", "q", "n_weights")
    return {k: scaling.loglog_slope(h, [getattr(m, k) for m in R.width]) for k in keys}


def depth_rates(R: ReviewersResult) -> dict[str, float]:
    """Geometric growth per added layer, from the shallowest to the deepest network, of
    the needed margin and of each factor that depends on depth."""
    a, b = R.depth[0], R.depth[-1]
    steps = b.depth - a.depth
    keys = ("needed", "product_of_norms", "sum_of_ratios", "product_of_gammas")
    return {k: (getattr(b, k) / getattr(a, k)) ** (1.0 / steps) for k in keys}


FACTOR_NAMES = {"product_of_norms": "the product of spectral norms",
                "sum_of_ratios": "the sum of relative errors",
                "product_of_gammas": "the product of the Γ factors"}


def dominant_factor(R: ReviewersResult) -> str:
    """The factor of the needed margin that grows fastest with depth (its name)."""
    rates = depth_rates(R)
    return FACTOR_NAMES[max(FACTOR_NAMES, key=rates.get)]


def two_standard_errors(error: float, n: int) -> float:
    """Two standard errors of the difference of two test error rates near ``error``
    measured on the same ``n`` samples, treated as independent (conservative)."""
    return 2.0 * math.sqrt(2.0 * error * (1.0 - error) / n)


def numbers(R: ReviewersResult) -> dict[str, float | int | str]:
    """The numbers the chapter's text quotes (glued under these names)."""
    d_hi = R.ds[-1]
    paper, mag, rnd = (rule_at(R, k, CLAIM_D) for k in scaling.RULES)
    paper_hi, mag_hi, rnd_hi = (rule_at(R, k, d_hi) for k in scaling.RULES)
    t3, gauss = R.student[0], R.student[-1]
    sl, rates = slopes(R), depth_rates(R)
    deep = R.depth[-1]
    n = {
        "rev_q": R.margin_q, "rev_gamma": R.gamma, "rev_test_err_f": R.test_error,
        "rev_n_test": R.n_test,
        "rev_epochs": R.epochs, "rev_kurt_max": max(R.kurtosis), "rev_kurt_min": min(R.kurtosis),
        "rev_t3_keep_ratio": t3.keep / gauss.keep, "rev_t3_m2_ratio": t3.m2 / gauss.m2,
        "rev_t3_norm_ratio": t3.mc_norm / gauss.mc_norm, "rev_student_d": STUDENT_D,
        "rev_claim_d": CLAIM_D, "rev_kept_claim": paper.kept,
        "rev_d_hi": d_hi, "rev_kept_hi": paper_hi.kept, "rev_paper_test_hi": paper_hi.test_error,
        "rev_mag_test_hi": mag_hi.test_error, "rev_rand_test_hi": rnd_hi.test_error,
        "rev_mag_dn_ratio": sum(mag.delta_norms) / sum(paper.delta_norms),
        "rev_mag_change_ratio": mag.test_change / paper.test_change,
        "rev_paper_test": paper.test_error, "rev_mag_test": mag.test_error,
        "rev_rand_test": rnd.test_error, "rev_two_se": two_standard_errors(paper.test_error, R.n_test),
        "rev_dead_paper": paper_hi.dead_rows, "rev_dead_mag": mag_hi.dead_rows,
        "rev_dead_rand": rnd_hi.dead_rows,
        "rev_fro_ratio_min": min(r[1] for r in frobenius_ratios(R)),
        "rev_fro_ratio_max": max(r[2] for r in frobenius_ratios(R)),
        "rev_fro_iid": iid_frobenius_ratio(R.shapes[1 if len(R.shapes) > 1 else 0]),
        "rev_fro_iid_out": iid_frobenius_ratio(R.shapes[-1]),
        "rev_q_over_nnz_hi": paper_hi.q / paper_hi.nnz,
        "rev_family_d": R.family_d, "rev_family_epochs": R.family_epochs,
        "rev_depth_width": R.depth_width, "rev_width_depth": R.width_depth,
        "rev_depth_growth": rates["needed"], "rev_depth_dominant": dominant_factor(R),
        "rev_depth_dominant_rate": max(rates[k] for k in FACTOR_NAMES),
        "rev_deep_L": deep.depth, "rev_deep_needed": deep.needed, "rev_deep_gamma": deep.gamma,
        "rev_family_err_min": min(m.test_error for m in R.width + R.depth),
        "rev_family_err_max": max(m.test_error for m in R.width + R.depth),
        "rev_width_dense": sum(m.q >= m.n_weights for m in R.width), "rev_n_widths": len(R.width),
    }
    n.update({f"rev_slope_{k}": v for k, v in sl.items()})
    for g in R.gains:
        n[f"rev_gain_{g.n}_d{g.d:g}_provable"] = g.provable
        n[f"rev_gain_{g.n}_d{g.d:g}_frobenius"] = g.frobenius
        n[f"rev_gain_{g.n}_d{g.d:g}_ratio"] = g.provable / g.frobenius
    return n


# --------------------------------------------------------------------------- claims
def claims(R: ReviewersResult) -> list[Claim]:
    """The chapter's claim records (see :mod:`prunebounds.claims`)."""
    n = numbers(R)
    ch = dict(origin="reviewer", chapter=LABEL)
    d = CLAIM_D
    err_p, err_m, err_r = n["rev_paper_test"], n["rev_mag_test"], n["rev_rand_test"]
    se2 = n["rev_two_se"]
    g784, g2000 = gain(R, 784, 1.0), gain(R, 2000, 1.0)
    sl = slopes(R)
    return [
        Claim(id="rev-q1-gaussian", **ch, evidence="tab-rev-student",
              statement="Q1. The rule needs Gaussian weights only for its formulas: Student-$t_3$ weights "
                        "keep the Gaussian fraction at $d=1$",
              measured=(Value("t3_keep_ratio", "Student-$t_3$ kept fraction / Gaussian at $d=1$",
                              n["rev_t3_keep_ratio"], ".2f"),
                        Value("kurt_max", "largest excess kurtosis of a trained layer", n["rev_kurt_max"], ".2f")),
              judgement=criteria.caveat(
                  criteria.within_factor(n["rev_t3_keep_ratio"], 1.0, 1.1, what="the t₃ / Gaussian kept fraction",
                                         reference_what="1"),
                  "the random-matrix step needs independent mean-zero errors (weights-random view), not "
                  "Gaussian weights; given the trained weights the error is not mean zero")),
        Claim(id="rev-q2-deterministic", **ch, evidence="tab-rev-rules",
              statement="Q2. Deterministic (magnitude) pruning does at least as well as the paper's random rule",
              measured=(Value("paper_test", f"test error at $d={d:g}$: paper's rule", err_p, ".2%"),
                        Value("mag_test", "magnitude", err_m, ".2%"),
                        Value("rand_test", "random", err_r, ".2%")),
              judgement=criteria.caveat(
                  criteria.at_most(err_m, err_p + se2, what="magnitude pruning's test error",
                                   limit_what="the paper's rule's plus two standard errors"),
                  "under the Gaussian model the random-matrix argument covers a fixed threshold as it covers "
                  "the random rule; the magnitude rule here uses each layer's own quantile (a data-dependent "
                  "threshold), which couples the error's entries weakly")),
        Claim(id="rev-q2-random", **ch, evidence="tab-rev-rules",
              statement="Q2. Random pruning at the same sparsity does worse than both magnitude-based rules",
              measured=(Value("rand_test", f"random pruning's test error at $d={d:g}$", err_r, ".2%"),
                        Value("best_other", "the worse of the two other rules", max(err_p, err_m), ".2%")),
              judgement=criteria.at_least(err_r, max(err_p, err_m) + se2, what="random pruning's test error",
                                          limit_what="the worse other rule's plus two standard errors")),
        Claim(id="rev-q3-rmt-gain", **ch, evidence="tab-rev-provable",
              statement="Q3. At the paper's MNIST width ($n=784$) the provable random-matrix bound on "
                        "$\\opnorm{\\Delta}$ is below the Frobenius bound",
              measured=(Value("sym784", "provable bound at $n=784$, $d=1$ / large-$n$ value", g784.provable, ".1f"),
                        Value("frob784", "Frobenius bound / large-$n$ value", g784.frobenius, ".1f"),
                        Value("sym_frob_2000", "provable / Frobenius at the CIFAR-10 width $n=2000$",
                              g2000.provable / g2000.frobenius, ".2f")),
              judgement=criteria.at_most(g784.provable, g784.frobenius, what="the provable bound at n = 784",
                                         limit_what="the Frobenius bound")),
        Claim(id="rev-q3-measured-gain", **ch, evidence="tab-rev-frobenius",
              statement="Q3. Measuring $\\opnorm{\\Delta^l}$, as the authors' needed margin does, instead of "
                        "bounding it by $\\fnorm{\\Delta^l}$ gains a factor of at least 2 in every layer",
              measured=(Value("fro_ratio_min", "$\\fnorm{\\Delta}/\\opnorm{\\Delta}$ per layer, at least",
                              n["rev_fro_ratio_min"], ".3g"),),
              judgement=criteria.at_least(n["rev_fro_ratio_min"], 2.0, what="‖Δ‖_F / ‖Δ‖₂")),
        Claim(id="rev-q5-depth", **ch, evidence="tab-rev-depth",
              statement="Q5. Depth drives the bound's size: the needed margin grows geometrically with depth",
              measured=(Value("depth_growth", "needed margin grows per layer by ×", n["rev_depth_growth"], ".3g"),
                        Value("dominant", "fastest-growing factor", n["rev_depth_dominant"], "s")),
              judgement=criteria.caveat(
                  criteria.at_least(n["rev_depth_growth"], 1.0, what="the growth per layer", limit_what="1, no growth"),
                  f"networks trained {R.family_epochs} epochs of the profile's SGD each; deeper ones are "
                  "less converged at equal epochs")),
        Claim(id="rev-q6-width", **ch, evidence="tab-rev-width",
              statement="Q6. With the width $h$, the sketch grows more slowly than the dense layer",
              measured=(Value("slope_needed", "needed margin $\\propto h^{s}$, $s$", sl["needed"], ".2f"),
                        Value("slope_q", "sketch size slope", sl["q"], ".2f"),
                        Value("slope_weights", "weights slope", sl["n_weights"], ".2f")),
              judgement=criteria.at_most(sl["q"], 0.9 * sl["n_weights"], what="the sketch size's slope",
                                         limit_what="0.9 × the weights' slope")),
    ]


def _without_number(statement: str) -> str:
    """A statement without its leading question number ("Q2. ")."""
    head, sep, rest = statement.partition(". ")
    return rest if sep and head[:1] == "Q" and head[1:].isdigit() else statement


def _evidence(label: str) -> str:
    return f"{{numref}}`{label}`" if label.startswith(("tab-", "fig-")) else f"{{ref}}`{label}`"


def answers(records: list[Claim]) -> list[list[str]]:
    """The rows of the chapter's answer table: one line per claim of :data:`QUESTIONS`
    (question, verdict badge, statement, evidence), from the claim records ``records``
    of this chapter; claims of other chapters show their verdict through the book's
    ``{claim}`` role and link to their chapter."""
    own = {c.id: c for c in records}
    rows = []
    for question, ids in QUESTIONS:
        for i, (cid, chapter) in enumerate(ids):
            c = own.get(cid)
            text = _without_number(c.statement) if c else f"answered in {{ref}}`{chapter}`"
            evidence = _evidence(c.evidence) if c else f"{{ref}}`{chapter}`"
            rows.append([question if i == 0 else "", f"{{claim}}`{cid}{'' if c else '?'}`",
                         text, evidence])
    return rows
