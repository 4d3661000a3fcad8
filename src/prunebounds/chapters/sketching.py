"""The sketching chapter: a pruned layer stored as A X B^T and recovered by l1 minimisation.

What the chapter measures (:func:`compute`, one :class:`SketchingResult`):

* a small instance of the sketch Y = A X B^T, for the schematic figure, and the check
  of vec(A X B^T) = (B kron A) vec(X) (:class:`Schematic`);
* the two solvers of :mod:`prunebounds.sketching` on one matrix (:class:`Agreement`);
* the phase diagram of exact recovery against the sketch side k and the non-zeros per
  row and column j (:class:`PhaseDiagram`);
* every layer of the trained network pruned by the paper's rule, sketched, recovered
  and put back (:class:`LayerRecovery`), with the rebuilt network's test error;
* the storage of each pruned layer: dense, the sketch used, sparse storage with
  positions (the paper's Lemma D.1), the values alone, the authors' count q_l, and the
  theory's sketch k = sqrt(j p) ln p with j = p chi(d) (:class:`LayerStorage`); the
  totals over d (:class:`StorageCurve`). This is the book's one storage comparison.

:func:`claims` turns the result into the chapter's claim records.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import counting, data, margins, models, pruning, runs, sketching
from ..cache import cached_result
from ..claims import Claim, Value, criteria
from ..devices import resolve_device
from ..profiles import Profile
from ..validate import check_real

LABEL = "chap-sketching"
REQUIRES = ()  # reads only the main network, which full-results trains first

#: Bits per stored value in the storage comparison (a 32-bit float).
BITS = 32
#: Sides of at most this size are stored unsketched (A = identity).
UNSKETCHED_SIDE = 16
#: The pruning parameters at which the pruned network's test accuracy is shown.
ACCURACY_DS = (1.0, 2.0, 5.0, 10.0)
#: A recovery is exact when its relative Frobenius error is below this.
EXACT = 1e-6


@dataclass(frozen=True)
class Sizes:
    """The chapter's sizes in one profile."""

    p_agree: int          # side of the matrix the two solvers both recover
    j_agree: int          # its non-zeros per row and column
    f_agree: float        # its sketch side over p
    p_phase: int          # side of the phase diagram's matrices
    k_grid: tuple[int, ...]
    j_grid: tuple[int, ...]
    trials: int           # draws per cell of the phase diagram
    k_fraction: float     # sketch side over p for the trained network's layers
    n_d: int              # points of the storage curve over d


SIZES = {
    "smoke": Sizes(16, 2, 0.85, 20, (6, 12, 18), (1, 2, 3), 1, 0.85, 5),
    "quick": Sizes(30, 3, 0.7, 30, (10, 14, 18, 22, 26, 30), (1, 2, 3, 4, 6), 3, 0.85, 21),
    "full": Sizes(40, 4, 0.7, 60, (12, 18, 24, 30, 36, 42, 48, 54, 60),
                  (1, 2, 3, 4, 6, 8, 10, 12), 3, 0.85, 101),
}


@dataclass(frozen=True)
class Schematic:
    """A small sketch for the schematic figure: X (p x p), A and B (k x p), Y = A X B^T."""

    X: tuple[tuple[float, ...], ...]
    A: tuple[tuple[float, ...], ...]
    B: tuple[tuple[float, ...], ...]
    Y: tuple[tuple[float, ...], ...]
    kron_error: float     # max |vec(A X B^T) - (B kron A) vec(X)|


@dataclass(frozen=True)
class Agreement:
    """The exact LP solver and the first-order solver on one matrix."""

    p: int
    j: int
    k: int
    fo_vs_lp: float       # ||X_fo - X_lp||_F / ||X_lp||_F
    lp_vs_truth: float    # ||X_lp - X||_F / ||X||_F
    lp_seconds: float
    fo_seconds: float
    fo_iterations: int
    fo_gap: float


@dataclass(frozen=True)
class PhaseDiagram:
    """Fraction of exact recoveries per (j, k) on p x p matrices."""

    p: int
    k_grid: tuple[int, ...]
    j_grid: tuple[int, ...]
    trials: int
    success: tuple[tuple[float, ...], ...]   # rows: j, columns: k
    k_min: tuple[int | None, ...]            # smallest k of the grid that always recovers
    theory_over_p: tuple[float, ...]         # sqrt(j p) ln p / p (constant 1), per j


@dataclass(frozen=True)
class LayerRecovery:
    """One pruned layer of the trained network, sketched and recovered."""

    shape: tuple[int, int]   # (out, in)
    nnz: int
    max_row: int
    max_col: int
    k_out: int
    k_in: int
    rel_error: float         # ||X_rec - X||_F / ||X||_F in float64
    iterations: int
    seconds: float
    converged: bool
    changed: int             # weights that differ from the pruned network's after rounding


@dataclass(frozen=True)
class LayerStorage:
    """Bits to store one pruned layer (out x in = d2 x d1) in each scheme."""

    shape: tuple[int, int]
    nnz: int
    dense_bits: float
    sketch_bits: float       # the sketch that recovered it in this chapter
    sparse_bits: float       # Lemma D.1: positions (log2 binomial) plus values
    values_bits: float       # the values alone
    authors_q: float         # the authors' count d1 d2 chi ln^2 max(d1, d2)
    theory_k: float          # sqrt(j p) ln p with j = p chi(d), p = max(d1, d2)
    theory_k_squared: float  # its square: the p x p sketch of the padded layer
    theory_capped: int       # min(ceil k, d2) * min(ceil k, d1), the capped sketch


@dataclass(frozen=True)
class StorageCurve:
    """Storage of the whole pruned network over d, in kilobytes (expected non-zeros)."""

    d: tuple[float, ...]
    dense: tuple[float, ...]
    sketch_theory: tuple[float, ...]  # the capped theory sketch of each layer
    sparse: tuple[float, ...]
    authors: tuple[float, ...]


@dataclass(frozen=True)
class SketchingResult:
    """Everything the sketching chapter shows."""

    profile: str
    d_prune: float
    k_fraction: float
    chi: float
    schematic: Schematic
    agreement: Agreement
    phase: PhaseDiagram
    accuracy_by_d: tuple[tuple[float, float], ...]   # (d, test accuracy of the pruned net)
    accuracy_full: float
    accuracy_pruned: float
    accuracy_rebuilt: float
    logit_diff: float        # max |logit difference| rebuilt vs pruned, test set
    layers: tuple[LayerRecovery, ...]
    storage: tuple[LayerStorage, ...]
    curve: StorageCurve

    @property
    def max_rel_error(self) -> float:
        return max(layer.rel_error for layer in self.layers)

    def total(self, field: str) -> float:
        """The sum over layers of a :class:`LayerStorage` field."""
        return float(sum(getattr(s, field) for s in self.storage))


# --------------------------------------------------------------------------- pieces
def permutation_sparse(p: int, j: int, seed: int) -> np.ndarray:
    """A p x p matrix with at most j N(0, 1) non-zeros per row and column.

    The sum of j random permutation matrices with Gaussian entries (entries where two
    permutations meet are overwritten, so a line may have fewer than j).
    """
    rng = np.random.default_rng(seed)
    X = np.zeros((p, p))
    for _ in range(j):
        X[np.arange(p), rng.permutation(p)] = rng.standard_normal(p)
    return X


def sketch_pair(k: int, p: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two k x p bipartite-graph matrices A, B with ceil(ln p) ones per column."""
    s = sketching.default_degree(p)
    return (sketching.bipartite_adjacency(k, p, s, seed=seed),
            sketching.bipartite_adjacency(k, p, s, seed=seed + 1))


def relative_error(X, reference: np.ndarray) -> float:
    """||X - reference||_F / ||reference||_F in float64."""
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    return float(np.linalg.norm(X.astype(np.float64) - reference) / np.linalg.norm(reference))


def schematic(p: int = 12, k: int = 8, j: int = 1, seed: int = 3) -> Schematic:
    """A p x p matrix with j non-zeros per line, its graphs A, B (k x p) and Y = A X B^T."""
    X = permutation_sparse(p, j, seed)
    A, B = sketch_pair(k, p, seed + 10)
    Y = sketching.sketch(X, A, B)
    err = np.abs(sketching.vec(Y) - sketching.kron_operator(A, B) @ sketching.vec(X)).max()
    rows = lambda M: tuple(tuple(float(v) for v in r) for r in M)  # noqa: E731
    return Schematic(rows(X), rows(A), rows(B), rows(Y), float(err))


def solver_agreement(S: Sizes, seed: int) -> Agreement:
    """Both solvers on one p x p matrix with j non-zeros per line, k = ceil(f p)."""
    X = permutation_sparse(S.p_agree, S.j_agree, seed)
    A, B = sketch_pair(math.ceil(S.f_agree * S.p_agree), S.p_agree, seed + 10)
    Y = sketching.sketch(X, A, B)
    lp = sketching.recover_linprog(Y, A, B)
    fo = sketching.recover_first_order(Y, A, B, threads=1)
    return Agreement(S.p_agree, S.j_agree, A.shape[0], relative_error(fo.X, lp.X),
                     relative_error(lp.X, X), lp.seconds, fo.seconds, fo.iterations,
                     float(fo.duality_gap if fo.duality_gap is not None else math.nan))


def phase_diagram(S: Sizes, seed: int, progress: bool = False) -> PhaseDiagram:
    """Fraction of exact recoveries (first-order solver) per (j, k) over ``S.trials`` draws."""
    p, cells = S.p_phase, [(j, k) for j in S.j_grid for k in S.k_grid]
    wins = {}
    for j, k in tqdm(cells, desc="phase diagram", disable=not progress):
        ok = 0
        for t in range(S.trials):
            X = permutation_sparse(p, j, seed=1000 * t + 10 * j + seed)
            A, B = sketch_pair(k, p, seed=10_000 * t + 100 * j + k + seed)
            res = sketching.recover_first_order(sketching.sketch(X, A, B), A, B,
                                                max_iter=600, threads=1)
            ok += relative_error(res.X, X) < EXACT
        wins[j, k] = ok / S.trials
    success = tuple(tuple(wins[j, k] for k in S.k_grid) for j in S.j_grid)
    k_min = tuple(next((k for k in S.k_grid if wins[j, k] == 1.0), None) for j in S.j_grid)
    theory = tuple(sketching.theory_sketch_size(j, p) / p for j in S.j_grid)
    return PhaseDiagram(p, S.k_grid, S.j_grid, S.trials, success, k_min, theory)


def side_matrix(p: int, k_fraction: float, seed: int) -> np.ndarray:
    """The sketch matrix of one side of size p: the identity for p <= 16, else k = ceil(f p)."""
    if p <= UNSKETCHED_SIDE:
        return np.eye(p)
    return sketching.bipartite_adjacency(math.ceil(k_fraction * p), p,
                                         sketching.default_degree(p), seed=seed)


def recover_layers(pruned: torch.nn.Module, k_fraction: float, device="cpu",
                   progress: bool = False) -> tuple[torch.nn.Module, list[LayerRecovery]]:
    """Sketch every layer of ``pruned``, recover it (first order, float32 iterations with a
    float64 polish) and put the recovered matrix into a copy of the network."""
    rebuilt = copy.deepcopy(pruned)
    out = []
    layers = list(enumerate(models.linear_layers(rebuilt)))
    for l, layer in tqdm(layers, desc="recovering layers", disable=not progress):
        X = layer.weight.detach().double().cpu().numpy()
        A = side_matrix(X.shape[0], k_fraction, 100 * l + 1)
        B = side_matrix(X.shape[1], k_fraction, 100 * l + 2)
        res = sketching.recover_first_order(sketching.sketch(X, A, B), A, B, device=device,
                                            dtype=torch.float32,
                                            threads=1 if torch.device(device).type == "cpu" else None)
        R = res.X.detach().cpu().numpy().astype(np.float64)
        with torch.no_grad():
            before = layer.weight.clone()
            layer.weight.copy_(torch.as_tensor(R, dtype=layer.weight.dtype))
        nz = X != 0
        out.append(LayerRecovery((int(X.shape[0]), int(X.shape[1])), int(nz.sum()),
                                 int(nz.sum(1).max()), int(nz.sum(0).max()), A.shape[0],
                                 B.shape[0], relative_error(R, X), int(res.iterations),
                                 float(res.seconds), bool(res.converged),
                                 int((layer.weight != before).sum())))
    return rebuilt, out


def theory_sketch(shape: tuple[int, int], keep: float) -> tuple[float, int]:
    """The theory's sketch of an (out, in) layer with j = p chi: (k, capped parameters).

    k = sqrt(j p) ln p with p = max(out, in) (constant 1); the capped count comes from
    :func:`prunebounds.sketching.sketch_size_for` (j rounded up to a count).
    """
    j, p = keep * max(shape), max(shape)
    return sketching.theory_sketch_size(j, p), sketching.sketch_size_for(shape, j).n_params


def layer_storage(W: torch.Tensor, k_out: int, k_in: int, keep: float) -> LayerStorage:
    """Bits of every storage scheme for one pruned layer W (out x in), 32-bit values."""
    d2, d1 = (int(v) for v in W.shape)
    alpha = int(torch.count_nonzero(W))
    k, capped = theory_sketch((d2, d1), keep)
    return LayerStorage(
        shape=(d2, d1), nnz=alpha, dense_bits=float(BITS * counting.count_dense(d1, d2)),
        sketch_bits=float(BITS * counting.count_sketch(k_out, k_in)),
        sparse_bits=counting.count_sparse_positions_bits(d1, d2, alpha, BITS),
        values_bits=float(BITS * alpha), authors_q=counting.count_authors(d1, d2, keep),
        theory_k=float(k), theory_k_squared=float(k * k), theory_capped=int(capped))


def storage_curve(shapes: list[tuple[int, int]], n_d: int) -> StorageCurve:
    """Kilobytes of the whole network over d in [0.25, 10], with alpha = chi(d) d1 d2."""
    ds = np.linspace(0.25, 10.0, n_d)
    cols = {"dense": [], "sketch": [], "sparse": [], "authors": []}
    for d in ds:
        chi = float(pruning.expected_keep_fraction(d))
        tot = np.zeros(4)
        for d2, d1 in shapes:
            tot += [BITS * d1 * d2, BITS * theory_sketch((d2, d1), chi)[1],
                    counting.count_sparse_positions_bits(d1, d2, round(chi * d1 * d2), BITS),
                    BITS * counting.count_authors(d1, d2, chi)]
        for name, v in zip(cols, tot / 8e3):
            cols[name].append(float(v))
    return StorageCurve(tuple(float(d) for d in ds), tuple(cols["dense"]),
                        tuple(cols["sketch"]), tuple(cols["sparse"]), tuple(cols["authors"]))


# --------------------------------------------------------------------------- the chapter
def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def compute(P: Profile, *, d_prune: float = 2.0, k_fraction: float | None = None,
            progress: bool = True) -> SketchingResult:
    """Everything the chapter measures for profile ``P`` (cached)."""
    S = SIZES[P.name]
    # d <= 100: the smallest layer of any preset (smoke's 64 x 10) keeps 640 chi(100) = 6.3
    # weights on average; at d = 1000 it keeps 0.6 and is often empty (relative error 0/0).
    d_prune = check_real("d_prune", d_prune, minimum=0.0, maximum=100.0)
    k_fraction = check_real("k_fraction", S.k_fraction if k_fraction is None else k_fraction,
                            minimum=0.01, maximum=1.0)
    cfg = runs.RunConfig.from_profile(P)
    config = dict(run=cfg.key, profile=P.name, sizes=S.__dict__, d_prune=d_prune,
                  k_fraction=k_fraction, seed=P.seed, chapter=_source_hash())

    def work() -> SketchingResult:
        device = resolve_device(P.device)
        net = runs.train_cached(cfg, progress=progress).model.to(device)
        D = data.load(P.dataset, max_train=P.max_train).to(device)
        acc = lambda g: margins.model_accuracy(g, D.test.X, D.test.y)  # noqa: E731
        pruned = pruning.prune_paper(net, d_prune, seed=P.seed)
        rebuilt, layers = recover_layers(pruned, k_fraction, device, progress=progress)
        diff = (margins.logits(rebuilt, D.test.X) - margins.logits(pruned, D.test.X)).abs()
        keep = float(pruning.expected_keep_fraction(d_prune))
        Wp = models.weight_matrices(pruned)
        return SketchingResult(
            profile=P.name, d_prune=d_prune, k_fraction=k_fraction, chi=keep,
            schematic=schematic(), agreement=solver_agreement(S, P.seed),
            phase=phase_diagram(S, P.seed, progress),
            accuracy_by_d=tuple((d, acc(pruning.prune_paper(net, d, seed=P.seed)))
                                for d in ACCURACY_DS),
            accuracy_full=acc(net), accuracy_pruned=acc(pruned), accuracy_rebuilt=acc(rebuilt),
            logit_diff=float(diff.max()), layers=tuple(layers),
            storage=tuple(layer_storage(W, r.k_out, r.k_in, keep) for W, r in zip(Wp, layers)),
            curve=storage_curve([tuple(W.shape) for W in Wp], S.n_d))

    return cached_result("chapter-sketching", config, work, SketchingResult)


def claims(R: SketchingResult) -> list[Claim]:
    """The chapter's claim records."""
    chapter = dict(chapter=LABEL)
    ph = R.phase
    recovers = criteria.at_most(R.max_rel_error, EXACT, what="the largest relative recovery error",
                                limit_what="exact up to the solver")
    sketch_sparse = R.total("sketch_bits") / R.total("sparse_bits")
    authors_sparse = BITS * R.total("authors_q") / R.total("sparse_bits")
    storage = criteria.at_most(sketch_sparse, 1.0, what="sketch / sparse storage")
    first = R.layers[0]
    j1, p1 = max(first.max_row, first.max_col), max(first.shape)
    theory_layer = sketching.theory_sketch_size(j1, p1) / p1
    ratios = (Value("sketch_sparse", "sketch / sparse storage", sketch_sparse, ".2f"),
              Value("authors_sparse", "authors' formula / sparse", authors_sparse, ".2f"))
    return [
        Claim(id="sketch-size-theorem", origin="paper", **chapter, evidence="fig-sketching-phase",
              statement="Sketch size $k = O(\\sqrt{jp}\\,\\log p)$ suffices for exact recovery "
                        "{cite:p}`dasarathy2015sketching`",
              measured=(Value("theory_j1", f"theorem's $k/p$ at $j=1$ (constant 1, $p = {ph.p}$)",
                              ph.theory_over_p[0], ".2f"),
                        Value("theory_layer", f"for the first pruned layer ($j = {j1}$, $p = {p1}$)",
                              theory_layer, ".3g"),
                        Value("k_fraction", "$k/p$ with which every pruned layer was recovered",
                              R.k_fraction, ".2f")),
              judgement=criteria.vacuous_unless(recovers, criteria.at_most(
                  theory_layer, 1.0, what="the theorem's k/p for the first pruned layer",
                  limit_what="a sketch no larger than the layer"))),
        Claim(id="sketch-exact-recovery", origin="paper", **chapter, evidence="tab-sketching-layers",
              statement="Sketching recovers a pruned layer exactly {cite:p}`dasarathy2015sketching`",
              measured=(Value("max_rel_err", "largest relative error", R.max_rel_error, ".1e"),
                        Value("acc_pruned", "test accuracy, pruned", R.accuracy_pruned, ".4f"),
                        Value("acc_rebuilt", "rebuilt from sketches", R.accuracy_rebuilt, ".4f")),
              authors="never run",
              judgement=criteria.caveat_unless(
                  criteria.all_of(recovers, criteria.equal(
                      R.accuracy_rebuilt, R.accuracy_pruned, what="the rebuilt network's accuracy",
                      target_what="the pruned one's")),
                  criteria.at_most(R.k_fraction, 0.5, what="k/p"),
                  "the sketch is close to the layer's size")),
        Claim(id="sketch-storage", origin="paper", **chapter, evidence="tab-sketch-storage",
              statement="Sketching stores a pruned layer compactly (vs Lemma D.1's plain count)",
              measured=ratios, judgement=storage),
        Claim(id="rev-q4-sketch-storage", origin="reviewer", **chapter, evidence="tab-sketch-storage",
              statement="Q4. Sketching beats plain sparse storage", measured=ratios[:1],
              judgement=storage),
        Claim(id="authors-count-square", origin="ours", **chapter, evidence="tab-sketch-storage",
              statement="The authors' count $q_l$ equals the squared theory sketch size "
                        "$k_l^2$ only for square layers",
              measured=(Value("square_ratio", "$q_l / k_l^2$, square layers (largest deviation from 1)",
                              _square_deviation(R), ".2g"),
                        Value("output_ratio", "$q_l / k_l^2$, output layer", _output_ratio(R), ".3g")),
              judgement=criteria.all_of(
                  criteria.at_most(_square_deviation(R), 1e-9,
                                   what="|q_l / k_l^2 - 1| over the square layers"),
                  criteria.at_most(_output_ratio(R), 0.5, what="q_l / k_l^2 of the output layer",
                                   limit_what="a half"))),
    ]


def _square_deviation(R: SketchingResult) -> float:
    """max |q_l / k_l^2 - 1| over the square layers (0 when there is none)."""
    devs = [abs(s.authors_q / s.theory_k_squared - 1.0) for s in R.storage
            if s.shape[0] == s.shape[1] and s.theory_k_squared > 0]
    return float(max(devs, default=0.0))


def _output_ratio(R: SketchingResult) -> float:
    """q_L / k_L^2 of the last (output) layer."""
    s = R.storage[-1]
    return float(s.authors_q / s.theory_k_squared) if s.theory_k_squared > 0 else math.nan


def numbers(R: SketchingResult) -> dict[str, float | int]:
    """The numbers the chapter's text quotes, by glue name."""
    a, ph, st = R.agreement, R.phase, R.storage
    acc = dict(R.accuracy_by_d)
    square = [s for s in st if s.shape[0] == s.shape[1]]
    return {
        "sketch_kron_err": R.schematic.kron_error,
        "sketch_schematic_p": len(R.schematic.X), "sketch_schematic_k": len(R.schematic.Y),
        "sketch_schematic_s": int(sum(R.schematic.A[i][0] for i in range(len(R.schematic.A)))),
        "sketch_agree_p": a.p, "sketch_agree_j": a.j, "sketch_agree_k": a.k,
        "sketch_agree_diff": a.fo_vs_lp, "sketch_agree_err": a.lp_vs_truth,
        "sketch_agree_lp_s": a.lp_seconds, "sketch_agree_fo_s": a.fo_seconds,
        "sketch_agree_steps": a.fo_iterations,
        "sketch_phase_p": ph.p, "sketch_phase_trials": ph.trials,
        "sketch_phase_theory_j1": ph.theory_over_p[0],
        "sketch_d": R.d_prune, "sketch_chi": R.chi, "sketch_f": R.k_fraction,
        "sketch_f2": R.k_fraction ** 2,
        "sketch_acc_d10": acc.get(10.0, math.nan), "sketch_acc_d5": acc.get(5.0, math.nan),
        "sketch_acc_d2": acc.get(2.0, math.nan),
        "sketch_acc_full": R.accuracy_full, "sketch_acc_pruned": R.accuracy_pruned,
        "sketch_acc_rebuilt": R.accuracy_rebuilt, "sketch_logit_diff": R.logit_diff,
        "sketch_max_rel_err": R.max_rel_error,
        "sketch_n_changed": int(sum(layer.changed for layer in R.layers)),
        "sketch_recover_s": float(sum(layer.seconds for layer in R.layers)),
        "sketch_ratio_sketch_sparse": R.total("sketch_bits") / R.total("sparse_bits"),
        "sketch_ratio_authors_sparse": BITS * R.total("authors_q") / R.total("sparse_bits"),
        "sketch_ratio_sparse_dense": R.total("sparse_bits") / R.total("dense_bits"),
        "sketch_ratio_theory_dense": BITS * R.total("theory_capped") / R.total("dense_bits"),
        "sketch_n_square": len(square),
        "sketch_out_ratio": _output_ratio(R),
        "sketch_out_shape": f"{st[-1].shape[1]} → {st[-1].shape[0]}",
        "sketch_out_p": max(st[-1].shape),
        "sketch_bits_per_nnz": R.total("sparse_bits") / max(1, sum(s.nnz for s in st)),
    }
