"""Several Marathon masters and the undo, end to end: real HAProxy, real tasks, continuous load.

A swap whose first ``-m`` URL is a closed loopback port (a master that is down) keeps its release with
``--save-previous``; that file, deployed back with ``zdd -j``, is the undo. No request may fail throughout.
"""

import json

import pytest

from tests.e2e.test_deploy import UnderLoad, assert_exit, assert_no_failure
from tests.helpers import closed_port_url

pytestmark = pytest.mark.e2e


def test_a_swap_with_the_first_master_down_then_the_saved_release_deployed_back(cluster):
    cluster.seed_first(3, RELEASE="1")
    path = cluster.write_app(cluster.app(3, RELEASE="2"))
    saved = cluster.workdir / "previous-release.json"
    dead = closed_port_url()
    with UnderLoad(cluster, "first -m dead, then the undo") as run:
        swap = run.zdd(path, "--save-previous", str(saved), step="-m dead,live --save-previous",
                       marathon=f"{dead},{cluster.sim.url}")
        assert_exit(swap)
        assert swap.stderr.count("asking the next Marathon master") == 1, swap.stderr
        assert cluster.apps() == {"/web-green": (3, 3)}
        cluster.wait_idle()
        undo = run.zdd(saved, step="zdd -j previous-release.json")
        assert_exit(undo)
    assert_no_failure(run.load)
    assert cluster.apps() == {"/web-blue": (3, 3)}
    release = json.loads(saved.read_text())
    assert release["id"] == "web" and release["labels"]["RELEASE"] == "1"
    assert release["container"]["portMappings"][0]["servicePort"] == cluster.service_port
    assert cluster.sim.app("/web-blue")["labels"]["RELEASE"] == "1"
    assert {"blue", "green"} <= set(run.load.counts()["by_colour"])
