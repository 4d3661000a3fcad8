"""Tests of prunebounds.lottery: iterative magnitude pruning with rewinding."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn.utils import prune

from prunebounds import cache, data, lottery
from prunebounds.errors import ParameterError
from prunebounds.models import build, linear_layers
from prunebounds.train import optimiser_config

WIDTHS = (784, 24, 12, 10)


@pytest.fixture(scope="module")
def bundle():
    return data.load("synthetic", max_train=300)


@pytest.fixture(scope="module")
def fc_run(bundle):
    return lottery.imp(WIDTHS, bundle, "frankle-carbin", 3, 1, seed=3, progress=False)


@pytest.fixture(scope="module")
def global_run(bundle):
    return lottery.imp(WIDTHS, bundle, "global-20", 3, 1, seed=3, progress=False)


def _weights(state):
    return [v for k, v in state.items() if k.endswith("weight")]


# ------------------------------------------------------------------ schedules and counts
def test_presets():
    assert lottery.layer_rates("frankle-carbin", 3) == [0.2, 0.2, 0.1]
    assert lottery.layer_rates("global-20", 4) == [0.2, 0.2, 0.2, 0.0]
    with pytest.raises(ParameterError, match="frankle-carbin, global-20"):
        lottery.layer_rates("magic", 3)
    with pytest.raises(ParameterError, match="output layer dense"):
        lottery.Preset("bad", "global", 0.2, 0.1)


def test_kept_counts_compound_like_one_minus_p_to_the_k():
    for n, p in [(784 * 300, 0.2), (1000, 0.1), (7, 0.5), (123_457, 0.2)]:
        counts = lottery.kept_counts(n, p, 30)
        for k, c in enumerate(counts):
            # each round rounds once (error <= 1/2), and earlier errors shrink by (1 - p)
            assert abs(c - n * lottery.fraction_left(p, k)) <= 0.5 / p + 1e-9
    assert lottery.kept_counts(10, 0.25, 2) == [10, 8, 6]  # round(2.5) = 2, round(2.0) = 2
    assert lottery.fraction_left(0.2, 15) == pytest.approx(0.8 ** 15)


def test_layer_preset_keeps_exactly_the_predicted_counts(fc_run):
    rates = lottery.layer_rates("frankle-carbin", 3)
    for rd in fc_run.rounds:
        for mask, rate in zip(rd.masks, rates):
            assert int(mask.sum()) == lottery.kept_counts(mask.numel(), rate, rd.index)[-1]
        for mask, rate in zip(rd.next_masks, rates):
            assert int(mask.sum()) == lottery.kept_counts(mask.numel(), rate, rd.index + 1)[-1]


def test_global_preset_counts_and_dense_output(global_run):
    for rd in global_run.rounds:
        hidden = sum(int(m.sum()) for m in rd.masks[:-1])
        n_hidden = sum(m.numel() for m in rd.masks[:-1])
        assert hidden == lottery.kept_counts(n_hidden, 0.2, rd.index)[-1]
        assert bool(rd.masks[-1].all())


# ------------------------------------------------------------------ the procedure
def test_masks_are_nested_and_pruned_weights_stay_zero(fc_run, global_run):
    for run in (fc_run, global_run):
        for rd in run.rounds:
            for w, m, nxt in zip(_weights(rd.state), rd.masks, rd.next_masks):
                assert bool((w[~m] == 0).all())          # pruned stays exactly zero
                assert bool((nxt <= m).all())            # masks only shrink
            model = run.model_at(rd.index)
            assert not any(hasattr(layer, "weight_mask") for layer in linear_layers(model))


def test_next_mask_drops_the_smallest_trained_magnitudes(fc_run, global_run):
    for rd in fc_run.rounds:  # per layer: one threshold
        for w, m, nxt in zip(_weights(rd.state), rd.masks, rd.next_masks):
            a = w.abs()
            dropped = m & ~nxt
            if dropped.any():
                assert float(a[nxt].min()) >= float(a[dropped].max())
    for rd in global_run.rounds:  # hidden layers together: one threshold
        ws = _weights(rd.state)[:-1]
        kept = torch.cat([w.abs()[n] for w, n in zip(ws, rd.next_masks[:-1])])
        dropped = torch.cat([w.abs()[m & ~n] for w, m, n in zip(ws, rd.masks[:-1],
                                                                 rd.next_masks[:-1])])
        assert float(kept.min()) >= float(dropped.max())


def test_rewinding_independent_replay(bundle, fc_run):
    """Round k = a fresh network of the same seed, masked with m_k, trained once."""
    opt = optimiser_config("paper-mnist")
    for k in (1, 3):
        net = build(WIDTHS, 3)
        for layer, mask in zip(linear_layers(net), fc_run.rounds[k].masks):
            prune.custom_from_mask(layer, "weight", mask.float())
        lottery._train_masked(net, bundle, opt, 1, 3)
        for layer in linear_layers(net):
            prune.remove(layer, "weight")
        for key, v in net.state_dict().items():
            assert torch.equal(v, fc_run.rounds[k].state[key]), key


def test_control_with_the_ticket_seed_reproduces_the_ticket(bundle, fc_run):
    k = 2
    same = lottery.random_reinit_control(WIDTHS, bundle, fc_run.rounds[k].masks, 1, seed=3,
                                         init_seed=3)
    for key, v in same.state.items():
        assert torch.equal(v, fc_run.rounds[k].state[key])
    other = lottery.random_reinit_control(fc_run.template, bundle, fc_run.rounds[k].masks, 1,
                                          seed=3, init_seed=lottery.control_seed(3, k))
    w_ticket, w_ctrl = _weights(fc_run.rounds[k].state), _weights(other.state)
    assert not torch.equal(w_ticket[0], w_ctrl[0])
    for w, m in zip(w_ctrl, fc_run.rounds[k].masks):
        assert bool((w[~m] == 0).all())
    assert other.fraction_left == pytest.approx(fc_run.rounds[k].fraction_left)


def test_imp_is_deterministic(bundle, fc_run):
    again = lottery.imp(WIDTHS, bundle, "frankle-carbin", 3, 1, seed=3, progress=False)
    for a, b in zip(fc_run.rounds, again.rounds):
        assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
        assert all(torch.equal(a.state[key], b.state[key]) for key in a.state)
        assert a.history == b.history


def test_bad_arguments(bundle):
    with pytest.raises(ParameterError, match="rounds"):
        lottery.imp(WIDTHS, bundle, "frankle-carbin", -1, 1, 0, progress=False)
    with pytest.raises(ParameterError, match="epochs_per_round"):
        lottery.imp(WIDTHS, bundle, "frankle-carbin", 1, 0, 0, progress=False)
    with pytest.raises(ParameterError, match="valid values"):
        lottery.imp(WIDTHS, bundle, "frankle", 1, 1, 0, progress=False)
    with pytest.raises(ParameterError, match="control rounds"):
        lottery.run_experiment(WIDTHS, bundle, "global-20", 1, 1, 0, control_rounds=[2],
                               progress=False)


# ------------------------------------------------------------------ measurements
def test_survivor_stats_normal_and_bimodal():
    rng = np.random.default_rng(0)
    g = rng.standard_normal((400, 500))
    s = lottery.survivor_stats(torch.from_numpy(g))
    assert abs(s.excess_kurtosis) < 0.05 and s.ks_D < 0.01
    assert s.centre_ratio == pytest.approx(1.0, abs=0.03)
    assert sum(s.hist) == g.size
    holed = np.where(np.abs(g) < 0.5, 0.0, g)          # magnitude pruning: a hole at zero
    h = lottery.survivor_stats(holed)
    assert h.n == int(np.count_nonzero(holed))      # zeros are not survivors
    assert h.centre_ratio == 0.0 and h.excess_kurtosis < -0.5 and h.ks_D > 0.1


def test_rule_on_survivors_matches_chi_for_gaussian_weights():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((500, 500)) * 0.03
    for keep in (0.8, 0.5, 0.2):
        r = lottery.rule_on_survivors(g, keep)
        assert r.rule_keep == pytest.approx(keep, abs=0.005)
        assert r.d_match == pytest.approx(r.d, rel=0.05)
        # at d_match the expected kept fraction of these very weights is `keep`
        x = g.ravel() ** 2 / g.var()
        assert np.mean(-np.expm1(-x / r.d_match)) == pytest.approx(keep, abs=1e-8)
    holed = np.where(np.abs(g) < 0.03 * 0.5, 0.0, g)
    h = lottery.rule_on_survivors(holed, 0.8)
    assert h.rule_keep > 0.9 and h.d_match > 3 * h.d  # a hole at zero: d must grow
    assert lottery.rule_on_survivors(g, 1.0) == lottery.RuleOnSurvivors(keep=1.0, d=0.0,
                                                                        rule_keep=1.0, d_match=0.0)


def test_analysis_is_json_and_the_dense_bound_is_by_hand(bundle, fc_run):
    a = lottery.analyse_round(fc_run, 2, bundle, margin_q=5.0, bits=8, delta=0.05)
    json.dumps(cache.to_jsonable(a), allow_nan=True)
    n_w = sum(m.numel() for m in fc_run.rounds[2].masks)
    n_b = sum(WIDTHS[1:])
    m = len(bundle.train)
    dense = a.sparse.bounds["dense_count"]
    by_hand = a.sparse.train_err + math.sqrt(((n_w + n_b) * math.log(256)
                                                    + math.log(1 / 0.05)) / (2 * m))
    assert dense.value == pytest.approx(by_hand, rel=1e-12)
    assert a.sparse.bounds["sparse_count"].value <= dense.value
    assert a.nnz == tuple(int(x.sum()) for x in fc_run.rounds[2].masks)
    assert a.fraction_left == pytest.approx(sum(a.nnz) / n_w)
    assert sum(a.input_nnz) == a.nnz[0]
    assert a.rule[-1].keep == pytest.approx(0.9, abs=0.01)


def test_imp_cached_computes_once(monkeypatch):
    kw = dict(control_rounds=[1], progress=False)
    first = lottery.imp_cached(WIDTHS, "synthetic", "global-20", 1, 1, 0, max_train=200, **kw)
    assert len(first.rounds) == 2 and first.controls[0].round == 1

    def boom(*a, **k):
        raise AssertionError("recomputed")

    monkeypatch.setattr(lottery, "run_experiment", boom)
    again = lottery.imp_cached(WIDTHS, "synthetic", "global-20", 1, 1, 0, max_train=200, **kw)
    assert isinstance(again, lottery.IMPExperiment)
    assert cache.json_bytes(cache.to_jsonable(again)) == cache.json_bytes(cache.to_jsonable(first))


# ------------------------------------------------------------------ several networks at once
@pytest.fixture(scope="module")
def stacked(bundle):
    return lottery.imp_stacked(WIDTHS, bundle, ["frankle-carbin", "global-20"], 3, 1, seed=3,
                               control_rounds=[2], progress=False)


def _close_states(a, b, atol=1e-5):
    return all(torch.allclose(a[k], b[k], atol=atol, rtol=1e-4) for k in a)


def test_stacked_imp_equals_imp_one_network_at_a_time(stacked, fc_run, global_run):
    """Training tickets side by side (batched products) gives the same rounds as the
    torch.nn.utils.prune implementation, up to float rounding."""
    for name, ref in (("frankle-carbin", fc_run), ("global-20", global_run)):
        res = stacked.results[name]
        assert [rd.index for rd in res.rounds] == [0, 1, 2, 3]
        for a, b in zip(res.rounds, ref.rounds):
            assert all(torch.equal(x, y) for x, y in zip(a.masks, b.masks))
            assert all(torch.equal(x, y) for x, y in zip(a.next_masks, b.next_masks))
            assert _close_states(a.state, b.state)
            assert np.allclose(a.history.train_loss, b.history.train_loss, rtol=1e-4)
            assert np.allclose(a.history.test_acc, b.history.test_acc, atol=1 / 500)


def test_stacked_control_equals_random_reinit_control(bundle, stacked, fc_run):
    assert set(stacked.controls["frankle-carbin"]) == {2}
    ctrl = stacked.controls["frankle-carbin"][2]
    ref = lottery.random_reinit_control(WIDTHS, bundle, fc_run.rounds[2].masks, 1, seed=3,
                                        init_seed=lottery.control_seed(3, 2))
    assert ctrl.fraction_left == pytest.approx(ref.fraction_left)
    assert _close_states(ctrl.state, ref.state)
    # and it is not the ticket: another initialisation
    assert not _close_states(ctrl.state, stacked.results["frankle-carbin"].rounds[2].state,
                             atol=1e-3)


def test_a_stack_trains_its_networks_independently(bundle):
    """A network trained alone and the same network trained beside others agree."""
    states = [build(WIDTHS, s).state_dict() for s in (1, 2, 3)]
    full = [torch.ones(o, i, dtype=torch.bool) for i, o in zip(WIDTHS[:-1], WIDTHS[1:])]
    half = [torch.rand(o, i, generator=torch.Generator().manual_seed(0)) < 0.5
            for i, o in zip(WIDTHS[:-1], WIDTHS[1:])]
    opt = lottery.imp_optimiser("frankle-carbin-adam")
    both = lottery.MaskedStack(states, [full, half, full], WIDTHS)
    alone = lottery.MaskedStack(states[1:2], [half], WIDTHS)
    hb = lottery.train_stack(both, bundle, opt, 2, seed=5)
    ha = lottery.train_stack(alone, bundle, opt, 2, seed=5)
    assert _close_states(both.states()[1], alone.states()[0])
    assert np.allclose(hb[1].train_loss, ha[0].train_loss, rtol=1e-5)
    w = both.states()[1]
    for key, m in zip(("0.weight", "2.weight", "4.weight"), half):
        assert bool((w[key][~m] == 0).all())          # pruned entries stay zero
    assert not _close_states(both.states()[0], both.states()[2])  # different inits differ


def test_late_rewinding_starts_every_round_from_the_given_weights(bundle):
    start = build(WIDTHS, 9).state_dict()
    res = lottery.imp_stacked(WIDTHS, bundle, ["frankle-carbin"], 1, 1, seed=3,
                              initial=start, progress=False).results["frankle-carbin"]
    assert all(torch.equal(res.initial[k], start[k]) for k in start)
    net = build(WIDTHS, 0)
    net.load_state_dict(start)
    stack = lottery.MaskedStack([start], [res.rounds[1].masks], WIDTHS)
    lottery.train_stack(stack, bundle, lottery.imp_optimiser("paper-mnist"), 1, seed=3)
    assert _close_states(stack.states()[0], res.rounds[1].state, atol=1e-6)


def test_stacked_imp_rejects_bad_arguments(bundle):
    with pytest.raises(ParameterError, match="frankle-carbin-adam"):
        lottery.imp_stacked(WIDTHS, bundle, ["frankle-carbin"], 1, 1, 0, optimiser="adam")
    with pytest.raises(ParameterError, match="control rounds must lie in 0..1"):
        lottery.imp_stacked(WIDTHS, bundle, ["frankle-carbin"], 1, 1, 0, control_rounds=[2])
    with pytest.raises(ParameterError, match="each once"):
        lottery.imp_stacked(WIDTHS, bundle, ["global-20", "global-20"], 1, 1, 0)
    with pytest.raises(ParameterError, match="masks of layer 1"):
        lottery.MaskedStack([build(WIDTHS, 0).state_dict()], [[torch.ones(3, 3)] * 3], WIDTHS)
