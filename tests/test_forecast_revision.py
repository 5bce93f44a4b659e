"""The forecast re-estimated as the run goes: after the baseline and each step, from the rates the run observed,
with no LLM call; the estimate after step 1 holds the actual spend and is closer to it than the first one; the
expected value's structure (exact parts, patience, memo hits) and the blending of observed rates."""
from types import SimpleNamespace

import pytest
from test_forecast import http_responder

from workbench import Models, TrainConfig, Trainer, open_run
from workbench.records.events import Event
from workbench.records.fold import RunFold
from workbench.records.report import render_report
from workbench.records.forecast_frames import spent_vs_forecast
from workbench.tasks import get_task
from workbench.testing import OpenAITestServer
from workbench.training.forecasting.forecast import Priors
from workbench.training.forecasting.expected import Remaining, expected_counts
from workbench.training.forecasting.revision import Observations, revised_priors


def projected_calls(forecast: dict, first: dict) -> dict[str, tuple[float, float, float]]:
    """Per role, the whole fit as a forecast sees it: what was spent since the fit's first forecast + what remains."""
    out = {}
    for role, r in forecast["roles"].items():
        before = (forecast["spent"].get(role) or {}).get("calls", 0) - (first["spent"].get(role) or {}).get("calls", 0)
        out[role] = tuple(before + r["calls"][how] for how in ("least", "expected", "most"))
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_re_estimates_make_no_call_hold_the_actual_and_move_toward_it(tmp_path, seed):
    """The task model fails every sample until the prompt says "Be precise." (kept in step 1 or 2 by seed),
    then none: the failure rate is known, so a re-estimate after step 1 must see it."""
    task = get_task("classification")
    train, val, test = task.load(12, 12, 12, seed=seed)
    targets = {e.input["question"].strip(): e.target for e in train + val + test}
    with OpenAITestServer(http_responder(targets, useless=2 * seed)) as server:
        models = Models.from_endpoint(server.base_url, "test-model", cache=None)
        trainer = Trainer(task.make_pipeline(), train, val, test, task.eval_fn, models, run_dir=tmp_path / "run",
                          config=TrainConfig(max_steps=3, epochs=2, batch_size=4, seed=seed, max_failed=2,
                                             max_correct=1, max_proposals=3))
        seen = []  # (event, requests the server had answered when it was emitted)
        trainer.bus.subscribe(lambda e: seen.append((e, server.served_count)))
        summary = trainer.fit()
        models.close()
    assert summary.status == "completed"
    revised = [(i, e) for i, (e, _) in enumerate(seen) if e.type == "forecast_revised"]
    assert [e.data["after"] for _, e in revised] == ["baseline", "step 1", "step 2"]  # none after the last step
    for i, e in revised:  # no request between the event before a re-estimate and the re-estimate
        assert seen[i][1] == seen[i - 1][1], e.data["after"]
    first = next(e for e, _ in seen if e.type == "forecast").data
    after_step_1 = next(e for _, e in revised if e.data["after"] == "step 1").data
    for role, spent in summary.usage.items():
        least, expected, most = projected_calls(after_step_1, first)[role]
        assert least <= spent["calls"] <= most, (role, least, spent["calls"], most)
    actual = sum(u["calls"] for u in summary.usage.values())
    initial = sum(r["calls"]["expected"] for r in first["roles"].values())
    later = sum(p[1] for p in projected_calls(after_step_1, first).values())
    assert abs(later - actual) < abs(initial - actual)  # it moved toward what the run spent
    observed = after_step_1["observed"]
    if seed == 0:  # step 1 kept "Be precise.": every validation sample passes with the current values
        assert observed["failing"] == 0 and observed["scored"] >= len(val) and observed["kept"] == 1
        assert "re-estimated after step 1 from 0 of" in after_step_1["assumptions"][0]
    # the fold keeps the fit's forecast (its error is measured against it) and its newest re-estimate
    run = open_run(tmp_path / "run")
    fold = RunFold()
    for e in run.events():
        fold.apply(e)
    assert fold.forecast["from_step"] == 0 and fold.forecast_revised["after"] == "step 2"
    # the DataFrame and the report: each re-estimate of the whole fit against what it spent
    frame = run.forecast_revisions
    assert list(dict.fromkeys(frame["after"])) == ["baseline", "step 1", "step 2"]
    calls = frame[(frame["after"] == "step 1") & (frame["measure"] == "calls")].set_index("role")
    for role, spent in summary.usage.items():
        assert calls.loc[role, "actual"] == spent["calls"] and bool(calls.loc[role, "inside"])
        assert calls.loc[role, "expected"] == pytest.approx(projected_calls(after_step_1, first)[role][1])
    assert "Re-estimated as the run went" in render_report(run)


def test_spent_vs_forecast_reads_the_newest_re_estimate():
    first = {"roles": {"task": {"calls": {"expected": 100}}}, "spent": {"task": {"calls": 10}}}
    revised = {"roles": {"task": {"calls": {"expected": 20}}}, "spent": {"task": {"calls": 40}}, "after": "step 1"}
    now = {"task": {"calls": 45}}
    assert spent_vs_forecast(now, first) == "35 of ~100 forecast calls"
    assert spent_vs_forecast(now, first, revised) == "35 of ~50 forecast calls, re-estimated after step 1"


def test_the_progress_line_and_dashboard_show_spent_against_the_newest_re_estimate(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    from workbench.records.progress import step_line
    from workbench.ui.state import RunState
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2), run_dir=tmp_path / "run")
    events = []
    trainer.bus.subscribe(events.append)
    trainer.fit()
    fold, st = RunFold(), RunState()
    for e in events:
        fold.apply(e)
        st.apply(e)
        if e.type == "step_finished" and e.step == 2:
            line = step_line(2, 2, e.data, fold)
    assert line.endswith("forecast calls, re-estimated after step 1)")
    assert "re-estimated after step 1" in st.run.traits({"controls"})["forecast"]
    hostile = Event("forecast_revised", {**next(e.data for e in events if e.type == "forecast_revised"),
                                         "after": "<img src=x onerror=alert(1)>"})
    fold.apply(hostile)  # the line is text: what it says is shown as it is, never parsed
    assert "<img src=x onerror=alert(1)>" in fold.spent_vs_forecast()


def config(**kw):
    base = dict(max_proposals=3, max_failed=2, max_correct=1, max_carried=4, patience=None)
    return SimpleNamespace(**{**base, **kw})


def test_no_failure_expected_means_only_the_forward_and_the_final_test():
    remaining = Remaining([4, 4, 4], [4, 4, 0], [[], [], [-1, -1, 0, 1]], val=10, test=6, test_held=6)
    e = expected_counts(Priors(failing_share=0.0), config(), remaining, text_groups=2, demo_groups=0)
    assert (e.task_samples, e.backward_samples, e.optimizer_calls) == (8, 0, 0)  # no change: repeats and test in memo


def test_a_run_that_keeps_a_change_pays_again_for_samples_and_the_test():
    remaining = Remaining([4, 4], [4, 0], [[], [0, 0, 0, 0]], val=10, test=6, test_held=6)
    always = Priors(failing_share=1.0, keep_chance=1.0, minibatch_pass=1.0, validated_share=1.0, fix_share=0.0)
    e = expected_counts(always, config(), remaining, text_groups=1, demo_groups=0)
    # every sample fails: 2 chosen (max_failed), none passing for contrast. step 1: 4 forward + 2 gate + 10
    # validation; step 2: its 4 samples run again (a change was kept) + 2 + 10; the final test 6 (changed values)
    assert e.task_samples == pytest.approx(4 + 2 + 10 + 4 + 2 + 10 + 6)
    assert e.backward_samples == pytest.approx(4) and e.optimizer_calls == pytest.approx(2)


def test_patience_ends_the_expected_run_and_a_best_score_no_one_can_beat_validates_nothing():
    remaining = Remaining([4] * 4, [4] * 4, [[]] * 4, val=10, test=0, test_held=0, can_win=False)
    failing = Priors(failing_share=1.0)
    e = expected_counts(failing, config(patience=2), remaining, text_groups=1, demo_groups=0)
    # nothing can be kept: two steps run, then patience stops the run; every attempt is made, no validation;
    # step 1 chooses 2 failed samples, step 2 those 2 carried (their forward is in the memo) + 2 failed
    assert e.optimizer_calls == pytest.approx(2 * 3) and e.backward_samples == pytest.approx(2 + 4)
    assert e.task_samples == pytest.approx(4 + 3 * 2 + 4 + 3 * 4)


def test_observed_rates_blend_with_the_stated_prior():
    obs = Observations()
    for pid, passed in (("p1-1", True), ("p1-2", False), ("p1-3", True)):
        obs.on_event(Event("proposal", {"proposal_id": pid}))
        obs.on_event(Event("minibatch", {"proposal_id": pid, "passed": passed}))
    obs.on_event(Event("eval", {"split": "val", "phase": "proposal", "proposal_id": "p1-1", "n": 10}))
    obs.on_event(Event("validation", {"proposal_id": "p1-3", "passed": True, "score": 0.75, "best": 0.5}))
    obs.on_event(Event("update", {"proposal_id": "p1-3", "accepted": True}))
    tallies = obs.to_dict()
    assert tallies == {"attempts": 3, "kept": 1, "gates": 3, "gates_passed": 2, "validations": 1,
                       "validation_samples": 10, "fixes": [0.5]}
    stated = Priors()
    none = revised_priors(stated, Observations().to_dict(), (0, 0), 10, "baseline")
    assert (none.failing_share, none.keep_chance, none.fix_share) == (stated.failing_share, stated.keep_chance,
                                                                      stated.fix_share)
    seen = revised_priors(stated, tallies, (0, 98), 10, "step 1")
    assert seen.failing_share == pytest.approx(1 / 100)  # 0 of 98 failing, the prior as 2 observations
    assert seen.keep_chance == pytest.approx((1 + 0.6) / 5) and seen.minibatch_pass == pytest.approx(3 / 5)
    assert seen.validated_share == pytest.approx((1 + 1.5) / 3)
    assert seen.source.startswith("re-estimated after step 1 from 0 of 98 samples failing")


def test_a_re_estimate_that_fails_warns_once_and_the_run_goes_on(tmp_path):
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text, task
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, Models.scripted(task, backward, Optimizer()),
                      config=TrainConfig(max_steps=2), run_dir=tmp_path / "run")

    def broken():
        raise OSError("the memo's disk went away")
    trainer.costs._failing_now = broken
    with pytest.warns(UserWarning, match="not re-estimated after baseline: OSError") as caught:
        summary = trainer.fit()
    assert summary.status == "completed" and summary.forecast_error is not None  # the first forecast still counts
    assert sum("not re-estimated" in str(w.message) for w in caught) == 1  # no more tries in this fit
    types = [e.type for e in open_run(tmp_path / "run").events()]
    assert "forecast" in types and "forecast_revised" not in types


def test_with_patience_the_least_is_what_a_run_where_nothing_fails_pays_before_it_stops(tmp_path):
    """Nothing fails in this task from the start: patience=1 ends the run after step 1, so step 2's forward
    is not in the least (it was, and the range missed the actual)."""
    from scripted_tasks import TEST, TRAIN, VAL, Optimizer, Shout, backward, same_text
    import re

    def right(messages):  # every word in capitals: every sample passes with the first prompt
        return re.search(r"Word: (\w+)", messages[-1]["content"]).group(1).upper()
    models = Models.scripted(right, backward, Optimizer())
    trainer = Trainer(Shout(), TRAIN, VAL, TEST, same_text, models, config=TrainConfig(max_steps=2, patience=1),
                      run_dir=tmp_path / "run")
    forecast = trainer.forecast()
    summary = trainer.fit()
    assert summary.status == "plateau" and summary.steps == 1
    for role, spent in summary.usage.items():
        assert forecast.roles[role].calls.holds(spent["calls"]), (role, forecast.roles[role].calls, spent)
