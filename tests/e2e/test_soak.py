"""The soak (``tox -e soak``): 20 deployments back and forth, 10 instances, 2 marathon-lbs, load throughout.

marathon-lb's own HAProxy head (one thread per CPU, no idle-close-on-response),
with getpids served from /proc or forking a command as marathon-lb's
getpids.lua does. With zdd's default reload check (the grace, for the soak's
HTTP backend) no getpids is read and no request may fail, whichever getpids
the marathon-lbs serve; with ``--reload-check getpids`` zdd reads it before
each kill and the delete, and only the fork-free one must lose nothing.
``ZDD_SOAK_DEPLOYMENTS`` changes the count. See tests/sandbox/soak.py for
what is measured.
"""

import os

import pytest

from tests.sandbox.soak import INSTANCES, LBS, run_soak, summary

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

DEPLOYMENTS = int(os.environ.get("ZDD_SOAK_DEPLOYMENTS", "20"))
KILL_STEPS = 4  # 10 instances: four steps kill old tasks, then the old app is deleted


def _soak(cluster_factory, getpids, zdd_args=()):
    cluster = cluster_factory(lbs=LBS, getpids=getpids, head="marathon-lb", reload_grace_s=None)
    result = run_soak(cluster, DEPLOYMENTS, echo=print, zdd_args=zdd_args)
    print(summary(result))
    assert [row.exit_code for row in result.deployments] == [0] * DEPLOYMENTS, result.deployments[-1].stderr
    assert cluster.apps() == {"/web-%s" % ("blue" if DEPLOYMENTS % 2 == 0 else "green"): (INSTANCES, INSTANCES)}
    return result


@pytest.mark.parametrize("getpids", ["proc", "popen"])
def test_soak(cluster_factory, getpids):
    result = _soak(cluster_factory, getpids)
    assert [row.getpids for row in result.deployments] == [0] * DEPLOYMENTS
    assert result.failed == 0, summary(result)


@pytest.mark.parametrize("getpids", ["proc", "popen"])
def test_soak_reading_getpids(cluster_factory, getpids):
    result = _soak(cluster_factory, getpids, ("--reload-check", "getpids"))
    # getpids only before a kill or the delete: once per marathon-lb per such step, again after a reload seen
    for row in result.deployments:
        assert LBS * (KILL_STEPS + 1) <= row.getpids < row.stats, row
    if getpids == "proc":
        assert result.failed == 0, summary(result)
