"""The budget, the evaluation cadence, the stop reasons and the learning rate, with no model in sight."""


import pytest

from charrnn.training.schedule import MAX_AUTO_EPOCHS, SCHEDULES, Budget, Cadence, WarmupCosine, get_schedule


def test_warm_up_then_cosine_decay_over_the_budget():
    s = WarmupCosine(peak=1.0, warmup=10, min_lr_frac=0.1)
    assert s.lr(0, 0.0, 1.0) == pytest.approx(0.1)
    assert s.lr(9, 0.0, 1.0) == pytest.approx(1.0)
    assert s.lr(100, 0.5, 1.0) == pytest.approx(0.55)
    assert s.lr(100, 1.0, 1.0) == pytest.approx(0.1)
    assert s.lr(100, 1.7, 1.0) == pytest.approx(0.1)  # past the budget (a resumed run): the floor
    assert s.lr(100, None, 0.25) == pytest.approx(0.25)  # no budget: the plateau scale decides


def test_plateau_halving_only_without_a_budget():
    s = WarmupCosine(peak=1.0, warmup=1, min_lr_frac=0.1)
    assert s.after_evaluation(improved=False, fraction=None, lr_scale=1.0) == 0.5
    assert s.after_evaluation(improved=True, fraction=None, lr_scale=0.5) == 0.5
    assert s.after_evaluation(improved=False, fraction=0.3, lr_scale=1.0) == 1.0


def test_schedules_are_found_by_name():
    assert "cosine" in SCHEDULES
    assert isinstance(get_schedule("cosine", 1e-3, 10, 0.05), WarmupCosine)
    with pytest.raises(ValueError, match="schedule must be one of"):
        get_schedule("linear-ish", 1e-3, 10, 0.05)


def test_budget_from_steps_epochs_and_time():
    assert Budget.of(100, None, None, 4, steps_per_epoch=30).steps == 100
    assert Budget.of(None, 2.5, None, 4, steps_per_epoch=30).steps == 75
    assert Budget.of(100, 2, None, 4, steps_per_epoch=30).steps == 60  # the smaller of the two
    timed = Budget.of(None, None, 600.0, 4, steps_per_epoch=30)
    assert (timed.steps, timed.seconds, timed.cap_steps) == (None, 600.0, None)
    open_ended = Budget.of(None, None, None, 4, steps_per_epoch=30)
    assert open_ended.cap_steps == MAX_AUTO_EPOCHS * 30


def test_fraction_is_the_further_of_steps_and_time():
    b = Budget(steps=100, seconds=60.0)
    assert b.fraction(50, 15.0) == 0.5
    assert b.fraction(10, 30.0) == 0.5
    assert Budget().fraction(10, 30.0) is None


@pytest.mark.parametrize("budget, step, elapsed, bad, why", [
    (Budget(steps=10), 10, 0.0, 0, "budget"),
    (Budget(steps=10), 9, 1e9, 99, ""),  # a step budget ignores the clock and patience
    (Budget(seconds=5.0), 3, 5.0, 0, "time"),
    (Budget(cap_steps=20, patience=3), 20, 0.0, 0, "cap"),
    (Budget(cap_steps=20, patience=3), 5, 0.0, 3, "patience"),
    (Budget(cap_steps=20, patience=3), 5, 0.0, 2, ""),
    (Budget(seconds=5.0, patience=4), 3, 1.0, 4, "early"),  # a --time run that has stopped improving
    (Budget(seconds=5.0, patience=4), 3, 1.0, 3, ""),
    (Budget(seconds=5.0, patience=0), 3, 1.0, 99, ""),  # --patience 0: never
    (Budget(cap_steps=20, patience=0), 5, 0.0, 99, ""),
    (Budget(steps=10, seconds=5.0, patience=2), 3, 1.0, 2, "early"),
])
def test_stop_reasons(budget, step, elapsed, bad, why):
    assert budget.stop_reason(step, elapsed, bad) == why


def test_cadence_by_steps():
    assert Cadence.of(7, Budget(steps=1000), 50) == Cadence(7)
    assert Cadence.of(None, Budget(steps=1200), 50) == Cadence(100)
    assert Cadence.of(None, Budget(cap_steps=5000), 40) == Cadence(40)  # no budget: every epoch, 250 steps at most
    assert Cadence.of(None, Budget(cap_steps=5000), 4000) == Cadence(250)
    c = Cadence(5)
    assert [s for s in range(1, 21) if c.due(s, 0.0, 0.0)] == [5, 10, 15, 20]


def test_cadence_by_time_fires_once_per_twelfth_of_the_budget():
    c = Cadence.of(None, Budget(seconds=120.0), 50)
    assert c.seconds == 10.0
    assert not c.due(3, 9.9, since=0.0) and c.due(3, 10.0, since=0.0)
    assert not c.due(4, 19.0, since=10.3)  # the evaluation itself took time: the next is at 20 s
    assert c.due(4, 20.0, since=10.3)
    assert c.due(4, 35.0, since=12.0)  # late (a long step): evaluate once, now


def test_watching_sizes_one_fixed_sample_to_its_share_of_a_time_budget():
    from charrnn.training.schedule import Watching

    w = Watching.of(Budget.of(None, None, 120, 4, 100), Cadence.of(None, Budget.of(None, None, 120, 4, 100), 100))
    assert w.evaluations == pytest.approx(12)
    # A 100k split scored at 200k chars/s: the end's score takes all of it (0.5 s, 0.4% of 120 s), and 12
    # evaluations may take 2% of the budget together: 0.2 s each, 40k chars.
    assert w.plan(200_000, 100_000) == (40_000, 100_000)
    assert w.plan(200_000, 30_000) == (30_000, 30_000)  # never more than the split (or --eval-chars)
    # A split of 10^6: the evaluations get their smallest share (here the probe's size), and the end scores what fits
    # in the rest of the share (~520k chars), so that all of it stays within WATCH_SHARE.
    sample, final = w.plan(200_000, 10**6)
    assert sample == Watching.PROBE_CHARS and 400_000 < final < 10**6
    spent = (12 * sample + final) / 200_000 + Watching.SAVE_SHARE * 120
    assert spent == pytest.approx(Watching.WATCH_SHARE * 120, rel=1e-3)
    assert w.plan(1_000, 10**6) == (Watching.PROBE_CHARS, Watching.PROBE_CHARS)  # never less than the probe
    # Each score also reads 64 stretches' burn-in (16,384 characters) it does not score: counted in the time.
    sample, final = w.plan(200_000, 10**6, overhead=16_384)
    spent = (12 * (sample + 16_384) + final + 16_384) / 200_000 + Watching.SAVE_SHARE * 120
    assert sample == Watching.PROBE_CHARS and spent == pytest.approx(Watching.WATCH_SHARE * 120, rel=1e-3)
    assert w.extras_due(3.0, 100.0) and not w.extras_due(4.0, 100.0)
    steps = Watching.of(Budget.of(500, None, None, 4, 100), Cadence.of(None, Budget.of(500, None, None, 4, 100), 100))
    assert steps.plan(1_000, 10**6) == (10**6, 10**6) and steps.extras_due(99.0, 100.0)  # no budget to share
