"""The soak (``tox -e soak``): 20 deployments back and forth, 10 instances, 2 marathon-lbs, load throughout.

marathon-lb's own HAProxy head (one thread per CPU, no idle-close-on-response),
once with getpids served from /proc and once forking a command as marathon-lb's
getpids.lua does. ``ZDD_SOAK_DEPLOYMENTS`` changes the count. See
tests/sandbox/soak.py for what is measured.
"""

import os

import pytest

from tests.sandbox.soak import INSTANCES, LBS, run_soak, summary

pytestmark = [pytest.mark.e2e, pytest.mark.soak]

DEPLOYMENTS = int(os.environ.get("ZDD_SOAK_DEPLOYMENTS", "20"))
KILL_STEPS = 4  # 10 instances: four steps kill old tasks, then the old app is deleted


@pytest.mark.parametrize("getpids", ["proc", "popen"])
def test_soak(cluster_factory, getpids):
    cluster = cluster_factory(lbs=LBS, getpids=getpids, head="marathon-lb")
    result = run_soak(cluster, DEPLOYMENTS, echo=print)
    print(summary(result))
    assert [row.exit_code for row in result.deployments] == [0] * DEPLOYMENTS, result.deployments[-1].stderr
    assert cluster.apps() == {"/web-%s" % ("blue" if DEPLOYMENTS % 2 == 0 else "green"): (INSTANCES, INSTANCES)}
    # getpids only before a kill or the delete: once per marathon-lb per such step, again after a reload seen
    for row in result.deployments:
        assert LBS * (KILL_STEPS + 1) <= row.getpids < row.stats, row
    if getpids == "proc":
        assert result.failed == 0, summary(result)
