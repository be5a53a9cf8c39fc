"""What the sandbox says when a scenario stalls on a task that never turns healthy: which task, and why.

A stalled deployment's timeout names each task not healthy with the cause of its last check, and a failed
scenario's report gets the same, with the cluster's log of health check changes (tests/e2e/conftest.py).
"""

import pytest

from tests.e2e.conftest import HEALTH_LOG_LINES, health_sections

pytestmark = pytest.mark.e2e


def test_a_stalled_deployment_says_which_task_is_not_healthy_and_why(cluster_factory):
    cluster = cluster_factory()
    cluster.sim.add_app(cluster.app(1, SIM_HEALTHY="false"), ready=False)
    with pytest.raises(TimeoutError) as raised:
        cluster.wait_idle(timeout_s=2)
    task_id, = [task["id"] for task in cluster.sim.app("/web")["tasks"]]
    assert "%s TASK_RUNNING: SIM_HEALTHY is false" % task_id in str(raised.value)
    sections = dict(health_sections(cluster_factory.clusters))
    assert sections["cluster-0: tasks not healthy"] == "%s TASK_RUNNING: SIM_HEALTHY is false" % task_id
    changes = sections["cluster-0: health check changes (last %d)" % HEALTH_LOG_LINES].splitlines()
    assert [line.split(" ", 1)[1] for line in changes] == ["%s: SIM_HEALTHY is false" % task_id]
