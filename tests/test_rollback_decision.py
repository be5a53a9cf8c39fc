"""The pure core's rollback decision, and server names resolved once per observation."""

import pytest

import zdd
from tests.test_core import busy, drained, identity, lb, mk_app, up

# In a rollback the observation's new app is the one restored (blue here), its old app the failed one (green).
RESTORED3 = mk_app("blue", [1, 2, 3])
FAILED1 = mk_app("green", [1])


def restore(restored, failed, lbs=None):
    return zdd.named(zdd.Observation(restored, failed, lbs), identity)


def listed_drained(*green):
    return [up("blue", 1), up("blue", 2), up("blue", 3)] + [drained("green", n) for n in green]


@pytest.mark.parametrize("observation, waited_s, handed_over, expected", [
    pytest.param(restore(mk_app("blue", [1]), FAILED1), 0, False, zdd.Step(scale_to=3), id="scale-back-first"),
    pytest.param(restore(RESTORED3, None), 0, False, zdd.Step(done=True), id="failed-app-gone-done"),
    pytest.param(restore(RESTORED3, FAILED1), 0, True, zdd.Step(read_lbs=True), id="needs-the-lbs"),
    pytest.param(restore(mk_app("blue", [1, 2, 3], deployments=[{"id": "d"}]), FAILED1), 0, True,
                 zdd.Step(wait="the restored app's Marathon deployment is in progress", bounded=False),
                 id="deployment-waits-without-lbs"),
    pytest.param(restore(RESTORED3, FAILED1, (lb(listed_drained(1)),)), 0, True, zdd.Step(delete_old=True),
                 id="drained-delete"),
    pytest.param(restore(RESTORED3, FAILED1, (lb(listed_drained(1)), lb(listed_drained(1), pids=(1, 2, 3)))), 0, True,
                 zdd.Step(wait="marathon-lb http://10.9.9.1:9090 is reloading (3 HAProxy PIDs)", bounded=False),
                 id="reload-waits"),
    pytest.param(restore(RESTORED3, FAILED1, (lb([up("blue", 1), up("blue", 2), up("blue", 3), busy("green", 1)]),)),
                 10, True, zdd.Step(wait="waiting for HAProxy to drain 1 task(s) of the failed app", draining=True),
                 id="draining-waits"),
    pytest.param(restore(RESTORED3, FAILED1, (lb([up("blue", 1), up("blue", 2), up("blue", 3), busy("green", 1)]),)),
                 300, True, zdd.Step(delete_old=True, forced=True), id="max-wait-deletes-forced"),
    pytest.param(restore(RESTORED3, FAILED1, (lb([up("blue", 1), up("blue", 2)]),)), 300, True,
                 zdd.Step(wait="marathon-lb http://10.9.9.1:9090 does not list every restored task yet",
                          bounded=False), id="not-listed-is-not-forced"),
])
def test_decide_rollback(observation, waited_s, handed_over, expected):
    assert zdd.decide_rollback(observation, 3, waited_s, 300, handed_over) == expected


def test_decide_rollback_hands_over_once_when_marathon_lb_would_drain_the_restored_app():
    # the failed green started later: marathon-lb calls it new and would never drain it
    restored = dict(RESTORED3, labels={zdd.LABEL_STARTED_AT: "2026-01-01T10:00:00"})
    failed = dict(FAILED1, labels={zdd.LABEL_STARTED_AT: "2026-01-01T12:00:00"})
    assert zdd.decide_rollback(restore(restored, failed), 3, 0, 300, False) == zdd.Step(hand_over=True)
    assert zdd.decide_rollback(restore(restored, failed), 3, 0, 300, True) == zdd.Step(read_lbs=True)


def test_every_host_is_resolved_once_per_observation():
    calls = []

    def counting(host):
        calls.append(host)
        return host

    same_host = mk_app("blue", [1, 2, 3])
    for task in same_host["tasks"]:
        task["host"] = "agent-1.example"
    zdd.named(zdd.Observation(mk_app("green", [1]), same_host, ()), counting)
    assert sorted(calls) == ["10.0.1.1", "agent-1.example"]


def test_one_decision_sees_one_answer_from_a_resolver_that_changes_its_mind():
    # a resolver that answers once, then fails (a DNS server going away mid-poll): every check of the
    # decision must see the first answer, so the drained task is killed and nothing says "no address"
    answered = set()

    def once_then_gone(host):
        if host in answered:
            return None
        answered.add(host)
        return host

    # at the target, the decision checks both apps' names twice (is the old app unrouted? has it drained?)
    listeners = [up("green", 1), up("green", 2), up("green", 3), drained("blue", 1)]
    observation = zdd.Observation(mk_app("green", [1, 2, 3]), mk_app("blue", [1]), (lb(listeners),))
    plan = zdd.Plan("/web-green", "/web-blue", target=3)
    step = zdd.decide_swap(zdd.named(observation, once_then_gone), plan, 0, 300)
    assert step == zdd.Step(delete_old=True)
