"""A trial's status: an enum whose values are the journal's strings, moved by one transition
function that refuses a move the executor never makes."""

from __future__ import annotations

import json

import pytest

from seer_torch.executor import IllegalTransition, Trial, TrialStatus, transition
from seer_torch.executor.trials import ALIVE, BROKEN, ENDED
from seer_torch.objective import Objective

S = TrialStatus


def test_the_statuses_are_the_journals_strings():
    assert [s.value for s in S] == [
        "pending",
        "running",
        "paused",
        "eliminated",
        "completed",
        "stopped",
        "failed",
        "diverged",
    ]
    assert json.dumps({"status": S.PAUSED}) == '{"status": "paused"}'
    assert f"{S.DIVERGED} ({S.FAILED})" == "diverged (failed)"
    assert S("eliminated") is S.ELIMINATED and S.RUNNING == "running"


@pytest.mark.parametrize(
    "current,new",
    [
        (S.PENDING, S.RUNNING),
        (S.PAUSED, S.RUNNING),
        (S.RUNNING, S.PAUSED),
        (S.RUNNING, S.FAILED),
        (S.RUNNING, S.DIVERGED),
        (S.RUNNING, S.ELIMINATED),
        (S.FAILED, S.RUNNING),
        (S.PAUSED, S.ELIMINATED),
        (S.PAUSED, S.DIVERGED),
        (S.PAUSED, S.COMPLETED),
        (S.RUNNING, S.STOPPED),
        (S.ELIMINATED, S.ELIMINATED),
    ],
)
def test_the_moves_the_executor_makes_are_allowed(current, new):
    assert transition(current, new) is new


@pytest.mark.parametrize(
    "current,new",
    [
        (S.ELIMINATED, S.RUNNING),
        (S.ELIMINATED, S.PAUSED),
        (S.DIVERGED, S.RUNNING),
        (S.DIVERGED, S.PAUSED),
        (S.FAILED, S.PAUSED),
        (S.FAILED, S.ELIMINATED),
        (S.COMPLETED, S.RUNNING),
        (S.STOPPED, S.PAUSED),
        (S.PENDING, S.FAILED),
        (S.PAUSED, S.FAILED),
    ],
)
def test_a_move_the_executor_never_makes_raises(current, new):
    with pytest.raises(IllegalTransition, match=f"{current.value} -> {new.value}"):
        transition(current, new)


def test_a_trial_moves_only_through_the_transition_function():
    t = Trial("t000", {"q": 0.5})
    objective = Objective()
    assert t.status is S.PENDING and t.view(objective).status == "paused"  # the policy sees it resting
    t.move_to(S.RUNNING)
    t.move_to(S.DIVERGED)
    assert t.to_dict("val_accuracy")["status"] == "diverged" and type(t.view(objective).status) is str
    with pytest.raises(IllegalTransition):
        t.move_to(S.RUNNING)
    assert t.status is S.DIVERGED
    assert ENDED == {S.ELIMINATED, S.FAILED, S.DIVERGED} and BROKEN < ENDED
    assert ALIVE == {S.PENDING, S.RUNNING, S.PAUSED}
