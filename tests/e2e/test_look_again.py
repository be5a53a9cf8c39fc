"""Looking again soon after each write, under continuous load: the same writes, zero failed requests.

The sandbox's other scenarios run zdd at -s 0.5; these run it at the default
step delay (5 s), where the look-again schedule (0.25 s after a write, 1.5x per
look) rather than the step delay sets the pace, and with --min-step-interval.
"""

import pytest

from tests.e2e.test_deploy import assert_exit, assert_no_failure, deploy_under_load, kill_bodies

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("lbs", [1, 2])
def test_blue_to_green_10_at_the_default_step_delay(cluster_factory, lbs):
    cluster = cluster_factory(lbs=lbs)
    cluster.seed_first(10)
    result, load, _ = deploy_under_load(cluster, cluster.app(10), "--step-delay", "5",
                                        scenario="blue->green 10, -s 5, %d marathon-lb(s)" % lbs)
    assert_exit(result)
    assert_no_failure(load)
    assert [len(ids) for ids in kill_bodies(cluster)] == [1, 1, 1, 2]
    assert cluster.apps() == {"/web-green": (10, 10)}


def test_min_step_interval_under_load(cluster):
    cluster.seed_first(3)
    result, load, _ = deploy_under_load(cluster, cluster.app(3), "--step-delay", "5", "--min-step-interval", "2",
                                        "--output", "json", scenario="blue->green 3, --min-step-interval 2")
    assert_exit(result)
    assert_no_failure(load)
    assert [len(ids) for ids in kill_bodies(cluster)] == [1, 1]
    assert result.stdout.count('"reason": "--min-step-interval"') == 3  # after the create and both steps
