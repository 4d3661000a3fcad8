"""The chapter module of "Iterative magnitude pruning and lottery tickets" (smoke profile)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prunebounds import lottery, profiles
from prunebounds.chapters import lottery_tickets as chapter
from prunebounds.claims import VERDICTS, Claim
from prunebounds.errors import ParameterError

P = profiles.resolve("smoke")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("lottery-cache")


@pytest.fixture(scope="module")
def result(cache_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRUNEBOUNDS_CACHE", str(cache_dir))
        return chapter.compute(P, progress=False)


def test_compute_runs_every_plan_and_schedule(result):
    S = chapter.settings(P)
    expected = {(plan.key, preset) for plan in S.plans for preset in plan.presets}
    assert {(r.network, r.preset) for r in result.runs} == expected
    for run in result.runs:
        plan = {p.key: p for p in S.plans}[run.network]
        assert [x.round for x in run.rounds] == list(range(plan.rounds + 1))
        assert [c.round for c in run.controls] == list(plan.control_rounds)
    assert result.m > 0 and result.r == 2 ** S.bits


def test_the_density_reached_is_the_planned_one(result):
    """The fraction left after the last round is exactly what the compounding rates give."""
    for run in result.runs:
        last = run.rounds[-1]
        assert last.fraction_left == pytest.approx(
            chapter.planned_left(run.widths, run.preset, last.round), abs=1e-12)
    rows = chapter.count_rows(result)  # raises if a count differs from the recurrence
    assert all(row[-1] == row[-2] for row in rows)


def test_the_profiles_reach_the_densities_the_issue_asks_for():
    quick, full = profiles.PROFILES["quick"], profiles.PROFILES["full"]
    lenet_q, paper_q = chapter.PLANS["quick"]
    assert chapter.planned_left((784, 300, 100, 10), "frankle-carbin", lenet_q.rounds) <= 0.035
    assert paper_q.rounds >= 3 and paper_q.rewind_epoch in quick.snapshots
    assert lenet_q.control_rounds and lenet_q.control_rounds[-1] == lenet_q.rounds
    paper_widths = (784, 784, 784, 784, 784, 10)
    for plan, widths in zip(chapter.PLANS["full"], [(784, 300, 100, 10), paper_widths]):
        assert plan.rewind_epoch == 0 and len(plan.control_rounds) == plan.rounds
        for preset in plan.presets:
            assert chapter.planned_left(widths, preset, plan.rounds) <= 0.02
    assert full.arch == "paper-mnist"


def test_tickets_returns_the_cached_weights(result, cache_dir, monkeypatch):
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(cache_dir))
    res = chapter.tickets(P, "lenet")
    run = result.run("lenet")
    assert isinstance(res, lottery.IMPResult) and len(res.rounds) == len(run.rounds)
    for rd, analysed in zip(res.rounds, run.rounds):
        assert rd.history.test_acc[-1] == pytest.approx(analysed.test_acc)
        assert rd.fraction_left == pytest.approx(analysed.fraction_left)
        weights = [v for k, v in rd.state.items() if k.endswith("weight")]
        for w, m, nxt in zip(weights, rd.masks, rd.next_masks):
            assert bool((w[~m] == 0).all()) and bool((nxt <= m).all())
    net = res.model_at(len(res.rounds) - 1)
    assert isinstance(net, torch.nn.Module)
    with pytest.raises(ParameterError, match="not 'nope'"):
        chapter.tickets(P, "lenet", "nope")
    with pytest.raises(ParameterError, match="valid values: lenet, paper"):
        chapter.imp_weights(P, "resnet")


def test_a_second_compute_reads_the_cache(result, cache_dir, monkeypatch):
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(cache_dir))
    again = chapter.compute(P, progress=False)
    assert again == result


def test_late_rewinding_starts_from_the_main_network(result):
    paper = result.run("paper")
    assert paper.rewind_epoch == chapter.PLANS["smoke"][1].rewind_epoch > 0


def test_claims_are_valid_and_keep_their_ids(result):
    claims = chapter.claims(result)
    assert [c.id for c in claims] == ["iterative-reading-a", "iterative-reading-b",
                                      "winning-tickets", "imp-paper-mlp"]
    for c in claims:
        assert isinstance(c, Claim) and c.verdict in VERDICTS and c.chapter == chapter.LABEL
    by_id = {c.id: c for c in claims}
    # the smoke profile trains short rounds: the ticket claim carries its caveat
    assert by_id["winning-tickets"].verdict in ("holds with a caveat", "does not hold")
    assert "late rewinding" in " ".join(by_id["imp-paper-mlp"].judgement.caveats) or \
        by_id["imp-paper-mlp"].verdict == "does not hold"


def test_the_ticket_claim_follows_the_numbers(result):
    s = result.summary
    worse = dataclasses.replace(result, summary=dataclasses.replace(
        s, lenet_ticket_acc=s.lenet_control_acc - 0.01))
    claim = {c.id: c for c in chapter.claims(worse)}["winning-tickets"]
    assert claim.verdict == "does not hold"
    better = dataclasses.replace(result, summary=dataclasses.replace(
        s, lenet_ticket_acc=max(s.lenet_dense_acc, s.lenet_control_acc) + 0.001,
        lenet_left=0.02, lenet_iterations=chapter.FC_ITERATIONS))
    assert {c.id: c for c in chapter.claims(better)}["winning-tickets"].verdict == "holds"
    gauss = dataclasses.replace(result, summary=dataclasses.replace(s, rule_keep_lo=0.79))
    assert {c.id: c for c in chapter.claims(gauss)}["iterative-reading-a"].verdict == "holds"


def test_settings_are_validated():
    with pytest.raises(ParameterError, match="valid values: 0, 1, 2"):
        chapter.settings(P, rewind_epoch=5)
    with pytest.raises(ParameterError, match="lenet_rounds must be an integer >= 1"):
        chapter.settings(P, lenet_rounds=0)
    S = chapter.settings(profiles.resolve("quick"), lenet_rounds=8, paper_epochs=2)
    assert S.lenet.rounds == 8 and S.lenet.control_rounds == (4, 8)
    assert S.paper.epochs == 2 and S.paper.rewind_epoch == 30


def test_the_full_plans_run_end_to_end_on_a_small_stand_in(tmp_path, monkeypatch):
    """The full profile's code path (both schedules on both networks, rewinding to the
    initial weights, a control in every round) on 300 synthetic samples, 1 round."""
    monkeypatch.setenv("PRUNEBOUNDS_CACHE", str(tmp_path))
    Pf = profiles.resolve("full", dataset="synthetic", max_train=300, device="cpu")
    S = chapter.settings(Pf, lenet_rounds=1, lenet_epochs=1, paper_rounds=1, paper_epochs=1)
    assert S.paper.rewind_epoch == 0 and S.paper.control_rounds == (1,)
    R = chapter.compute(Pf, S, progress=False)
    assert {(r.network, r.preset) for r in R.runs} == {
        (n, p) for n in ("lenet", "paper") for p in ("frankle-carbin", "global-20")}
    assert all([c.round for c in r.controls] == [1] for r in R.runs)
    paper = {c.id: c for c in chapter.claims(R)}["imp-paper-mlp"]
    assert "late rewinding" not in " ".join(paper.judgement.caveats)  # the full protocol


@pytest.mark.cuda
def test_stacked_imp_on_cuda_matches_the_cpu():
    """Tickets and controls trained side by side on a GPU: the same masks as on the CPU
    (the pruning order can differ only where trained magnitudes tie within float noise)."""
    from prunebounds import data

    bundle = data.load("synthetic", max_train=1000)
    runs = {dev: lottery.imp_stacked((784, 64, 32, 10), bundle, ["frankle-carbin", "global-20"],
                                     3, 2, seed=1, optimiser="frankle-carbin-adam",
                                     control_rounds=[2, 3], device=dev, progress=False)
            for dev in ("cpu", "cuda")}
    for name in ("frankle-carbin", "global-20"):
        cpu, gpu = runs["cpu"].results[name], runs["cuda"].results[name]
        for a, b in zip(cpu.rounds, gpu.rounds):
            same = sum(int((x == y).sum()) for x, y in zip(a.next_masks, b.next_masks))
            total = sum(x.numel() for x in a.next_masks)
            assert same >= total - 10, (name, a.index, total - same)
            assert abs(a.history.test_acc[-1] - b.history.test_acc[-1]) <= 0.02
        assert set(runs["cuda"].controls[name]) == {2, 3}
        for w in runs["cuda"].controls[name][3].state.values():
            assert w.device.type == "cpu"
