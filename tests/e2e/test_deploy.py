"""zdd end to end: the real command against the sandbox under continuous load.

Each scenario asserts zero failed client requests and the final Marathon
state, and prints what it measured (requests, failures, duration).
"""

import time

import pytest

pytestmark = pytest.mark.e2e


def deploy_under_load(cluster, app, *args, settle_s=1.0, timeout_s=300):
    """Run zdd for ``app`` while clients hit every marathon-lb; returns (result, load, seconds)."""
    path = cluster.write_app(app)
    load = cluster.load()
    with load:
        time.sleep(settle_s)
        started = time.monotonic()
        result = cluster.zdd(path, *args, timeout_s=timeout_s)
        seconds = time.monotonic() - started
        time.sleep(settle_s)
    counts = load.counts()
    print("\n%s: zdd exit %d in %.1f s; requests %d, failed %d" % (
        " ".join(args) or "deploy", result.returncode, seconds, counts["requests"], counts["failed"]))
    return result, load, seconds


def assert_no_failure(load):
    counts = load.counts()
    assert counts["requests"] > 500, load.summary()
    assert counts["failed"] == 0, load.summary()


@pytest.mark.parametrize("instances", [3, 10])
def test_blue_to_green(cluster, instances):
    cluster.deploy_first(instances)
    result, load, _ = deploy_under_load(cluster, cluster.app(instances))
    assert result.returncode == 0, result.stderr
    assert_no_failure(load)
    assert cluster.apps() == {"/web-green": (instances, instances)}
    assert set(load.counts()["by_colour"]) == {"blue", "green"}
