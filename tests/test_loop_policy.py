"""The loop's policies as pure functions, in tables: whether a transport error is permanent (by the exception
types behind it), the gate before a scale-up or the delete, when failed writes give up, and when to look again."""

import socket
import ssl

import pytest
import requests
import urllib3

import zdd
from tests.test_core import identity, mk_app


def _wrapped(cause, outer=requests.exceptions.ConnectionError):
    """``outer`` raised from ``cause`` as requests raises it: urllib3's error in its args, the cause behind it."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise urllib3.exceptions.NewConnectionError(None, "connect failed") from exc
    except Exception as exc:
        return outer(exc)


@pytest.mark.parametrize("exc, permanent", [
    (_wrapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known")), True),
    (_wrapped(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")), False),
    (_wrapped(ssl.SSLCertVerificationError("certificate verify failed")), True),
    (requests.exceptions.SSLError("any text at all"), True),
    (_wrapped(ConnectionRefusedError(111, "Connection refused")), False),
    (_wrapped(ConnectionResetError(104, "Connection reset by peer")), False),
    (requests.exceptions.ConnectTimeout("host name does not resolve"), False),
    (requests.exceptions.ReadTimeout("TLS verification failed"), False),
    (requests.exceptions.ConnectionError("host name does not resolve"), False),
], ids=["no such name", "resolver busy", "certificate", "requests SSLError", "refused", "reset", "connect timeout",
        "read timeout", "text only"])
def test_a_permanent_transport_error_is_known_by_its_types_not_its_text(exc, permanent):
    assert zdd._permanent(exc) is permanent


WAIT = zdd.Step(wait="marathon-lb has not caught up")
OTHER_WAIT = zdd.Step(wait="waiting for HAProxy to drain")
LB_DOWN = zdd.Step(wait="marathon-lb http://lb did not answer", lb_failed=True)
ENDS_BY_ITSELF = zdd.Step(wait="marathon-lb changed less than --reload-grace ago", look_again_s=1.2)


@pytest.mark.parametrize("looks, step, step_delay_s, pause_s, after", [
    (zdd.Looks(), WAIT, 5, 0.25, zdd.Looks(1, WAIT.wait)),  # the first look after a write: soon
    (zdd.Looks(1, WAIT.wait), WAIT, 5, 0.375, zdd.Looks(2, WAIT.wait)),  # the same wait: each look 1.5 times later
    (zdd.Looks(9, WAIT.wait), WAIT, 5, 5, zdd.Looks(10, WAIT.wait)),  # ... up to --step-delay
    (zdd.Looks(9, WAIT.wait), OTHER_WAIT, 5, 0.25, zdd.Looks(1, OTHER_WAIT.wait)),  # a new wait: soon again
    (zdd.Looks(9, WAIT.wait), LB_DOWN, 5, 5, zdd.Looks(10, LB_DOWN.wait)),  # not for a marathon-lb that is down
    (zdd.Looks(1), WAIT, 5, 0.375, zdd.Looks(2, WAIT.wait)),  # a pause after the write was the first look
    (zdd.Looks(0), ENDS_BY_ITSELF, 5, 1.2, zdd.Looks(1, ENDS_BY_ITSELF.wait)),  # a wait that ends by itself
    (zdd.Looks(0), ENDS_BY_ITSELF, 1, 1, zdd.Looks(1, ENDS_BY_ITSELF.wait)),  # ... within --step-delay
    (zdd.Looks(3), WAIT, 0, 0, zdd.Looks(4, WAIT.wait)),  # --step-delay 0
])
def test_when_the_loop_looks_again(looks, step, step_delay_s, pause_s, after):
    assert zdd.look_again(looks, step, step_delay_s) == (pytest.approx(pause_s), after)


AT_ONCE, LATER, GIVE_UP = zdd.AfterFailedWrite.AT_ONCE, zdd.AfterFailedWrite.LATER, zdd.AfterFailedWrite.GIVE_UP


@pytest.mark.parametrize("in_a_row, failing_s, swapping, stall_timeout_s, then", [
    (1, 0, True, 600, AT_ONCE),
    (3, 2, True, 600, AT_ONCE),  # up to 3 in a row at once
    (4, 2, True, 600, LATER),  # then every --step-delay
    (9, 599, True, 600, LATER),
    (9, 600, True, 600, GIVE_UP),  # until they have failed for --stall-timeout
    (99, 10**6, True, 0, LATER),  # --stall-timeout 0: no bound
    (3, 2, False, 600, AT_ONCE),  # the create: 3 at once ...
    (4, 2, False, 600, GIVE_UP),  # ... then zdd stops, nothing half done
    (4, 2, False, 0, GIVE_UP),
])
def test_when_failed_writes_give_up(in_a_row, failing_s, swapping, stall_timeout_s, then):
    assert zdd.after_failed_write(in_a_row, failing_s, swapping, stall_timeout_s) is then


@pytest.mark.parametrize("outcome, inconclusive, waited_s, max_wait_s, gate", [
    ("pass", "fail", 0, 300, zdd.Gate.CONTINUE),
    ("pass", "wait", 0, 300, zdd.Gate.CONTINUE),
    ("fail", "continue", 0, 300, zdd.Gate.FAIL),
    ("fail", "wait", 0, 300, zdd.Gate.FAIL),
    ("inconclusive", "continue", 0, 300, zdd.Gate.CONTINUE),
    ("inconclusive", "fail", 0, 300, zdd.Gate.FAIL),
    ("inconclusive", "wait", 0, 300, zdd.Gate.WAIT),
    ("inconclusive", "wait", 299.9, 300, zdd.Gate.WAIT),
    ("inconclusive", "wait", 300, 300, zdd.Gate.CONTINUE),  # --max-wait passed: go on
    ("inconclusive", "wait", 0, 0, zdd.Gate.CONTINUE),
])
def test_the_gate_after_a_steps_traffic_verdict(outcome, inconclusive, waited_s, max_wait_s, gate):
    assert zdd.traffic_gate(outcome, inconclusive, waited_s, max_wait_s) is gate


def _observed(new_app, old_app):
    """An observation of Marathon alone, as a poll begins: marathon-lb not read yet."""
    return zdd.named(zdd.Observation(new_app, old_app, lbs=None), identity)


DEPLOYING = {"deployments": [{"id": "d"}]}
DOUBTFUL = {"instances": "three"}
LATER_STARTED = {"labels": {zdd.LABEL_STARTED_AT: "2026-01-01T12:00:00"}}
EARLIER_STARTED = {"labels": {zdd.LABEL_STARTED_AT: "2026-01-01T10:00:00"}}


@pytest.mark.parametrize("new_app, old_app, reads", [
    (mk_app("green", [1]), mk_app("blue", [1, 2, 3]), True),
    (mk_app("green", [1], **DEPLOYING), mk_app("blue", [1, 2, 3]), False),  # the new app's deployment first
    (dict(mk_app("green", [1]), **DOUBTFUL), mk_app("blue", [1, 2, 3]), False),  # Marathon's answer in doubt
    (mk_app("green", [1, 2, 3]), mk_app("blue", [1], **DEPLOYING), True),  # the old app's deployment: read
], ids=["plain", "deploying", "doubtful", "old-app-deploying"])
def test_a_swap_poll_reads_marathon_lb_when_its_decision_needs_it(new_app, old_app, reads):
    observation = _observed(new_app, old_app)
    assert zdd.swap_reads_lbs(observation) is reads
    assert zdd.decide_swap(observation, zdd.Plan("/nginx-green", "/nginx-blue", target=3), 0, 300).read_lbs is reads


@pytest.mark.parametrize("restored, failed, handed_over, reads", [
    (mk_app("blue", [1, 2, 3]), mk_app("green", [1]), True, True),
    (mk_app("blue", [1]), mk_app("green", [1]), True, False),  # the scale back first
    (mk_app("blue", [1, 2, 3]), None, True, False),  # the failed app gone: done
    (mk_app("blue", [1, 2, 3], **DEPLOYING), mk_app("green", [1]), True, False),
    (dict(mk_app("blue", [1, 2, 3]), **DOUBTFUL), mk_app("green", [1]), True, False),
    (dict(mk_app("blue", [1, 2, 3]), **EARLIER_STARTED), dict(mk_app("green", [1]), **LATER_STARTED), False, False),
    (dict(mk_app("blue", [1, 2, 3]), **EARLIER_STARTED), dict(mk_app("green", [1]), **LATER_STARTED), True, True),
], ids=["plain", "scale-back", "done", "deploying", "doubtful", "hand-over", "handed-over"])
def test_a_rollback_poll_reads_marathon_lb_when_its_decision_needs_it(restored, failed, handed_over, reads):
    observation = _observed(restored, failed)
    assert zdd.rollback_reads_lbs(observation, 3, handed_over) is reads
    assert zdd.decide_rollback(observation, 3, 0, 300, handed_over).read_lbs is reads


@pytest.mark.parametrize("steps", [zdd.SwapSteps, zdd.RollbackSteps])
def test_both_steps_have_every_member_the_loop_asks_for(steps):
    members = set(zdd.LoopSteps.__annotations__) | {
        name for name, value in vars(zdd.LoopSteps).items() if callable(value) and not name.startswith("_")}
    assert members == {"doing", "app_ids", "complete", "reads_lbs", "next_step", "seen", "report", "waiting",
                       "finish", "act", "wrote"}
    plan = zdd.Plan("/web-green", "/web-blue", target=3)
    made = steps(plan, 300, tools=None) if steps is zdd.RollbackSteps else steps(plan, options=None, tools=None)
    assert not members - set(dir(made))
