"""Every stats read asks HAProxy for the group's backend only, and still filters exactly.

A marathon-lb in front of 1,000 apps serves megabytes of stats per read; with
``;scope=`` HAProxy renders only the proxies whose name contains the text.
The fake marathon-lb scopes as HAProxy 2.6 does (checked against the real one
in tests/sandbox_tests/test_haproxy.py), or ignores the scope as an HAProxy without it
would; zdd deploys the same in both, beside another app whose proxy name
contains the group's backend name. In process, on the fake clock.
"""

import pytest
import requests

import zdd
from tests.helpers import SEQUENCE_3, run, seed_blue, seed_half_done, writes
from tests.sandbox.fakelb import stats_scope
from tests.sandbox.world import load_fixture

SCOPED = "/haproxy?stats;csv;scope=nginx_10000"


@pytest.mark.parametrize("backend, path", [
    ("nginx_10000", SCOPED),
    # HAProxy reads 20 characters: the tail keeps the service port
    ("prod_payments_checkout_web_10000", "/haproxy?stats;csv;scope=s_checkout_web_10000"),
    ("a.b-c_31000", "/haproxy?stats;csv;scope=a.b-c_31000"),
    # HAProxy does not decode a scope and drops one with a character outside a proxy name's:
    # the scope is the tail that needs no encoding
    ("caf\u00e9 bar_10000", "/haproxy?stats;csv;scope=bar_10000"),
    ("x:y%z_10000", "/haproxy?stats;csv;scope=z_10000"),
    ("\u00e9", "/haproxy?stats;csv"),
])
def test_stats_path(backend, path):
    assert zdd.stats_path(backend) == path
    scope = stats_scope(path.partition("?")[2])  # as HAProxy reads it: whole, and a tail of the name
    assert scope is None or backend.endswith(scope)


def seed_other(world):
    """An app outside the group whose proxy name, xnginx_10000, contains the group's backend name."""
    other = load_fixture("1-nginx-marathon1.5.json")
    other["labels"] = {}
    return world.seed_app(other, id="/xnginx", instances=2)


def proxies(lb, path):
    text = requests.get(lb.url + path).text
    return sorted({line.split(",")[0] for line in text.splitlines()[1:]})


def test_the_fake_scopes_like_haproxy_26(world):
    seed_blue(world, 2)
    seed_other(world)
    everything = ["nginx_10000", "stats", "xnginx_10000"]
    assert proxies(world.lb, "/haproxy?stats;csv") == everything
    assert proxies(world.lb, SCOPED) == ["nginx_10000", "xnginx_10000"]  # a substring, FRONTEND and BACKEND too
    assert proxies(world.lb, "/haproxy?stats;csv;scope=NGINX_1") == ["nginx_10000", "xnginx_10000"]
    assert stats_scope("stats;csv;scope=xnginx_10000_and_more_text;x") == "xnginx_10000_and_mor"  # 20 characters
    assert proxies(world.lb, "/haproxy?stats;csv;scope=nginx%2F10000") == everything  # not decoded: no scope
    assert proxies(world.lb, "/haproxy?stats;csv;scope=x:y") == []
    world.lb.ignore_scope = True
    assert proxies(world.lb, SCOPED) == everything


@pytest.mark.parametrize("ignore_scope", [False, True])
def test_a_deployment_reads_the_group_backend_only(world, app_path, ignore_scope):
    seed_blue(world, 3)
    seed_other(world)
    world.lb.ignore_scope = ignore_scope
    code, _, err = run(world, app_path)
    assert code == 0, err
    assert writes(world) == SEQUENCE_3
    assert len(world.lb.stats_paths) > 3 and set(world.lb.stats_paths) == {SCOPED}  # the preflight too


@pytest.mark.parametrize("ignore_scope", [False, True])
def test_resume_status_and_the_traffic_analysis_read_the_group_backend_only(world, app_path, ignore_scope):
    seed_half_done(world)
    seed_other(world)
    world.lb.ignore_scope = ignore_scope
    world.lb.serve_traffic(100)
    code, out, err = run(world, app_path, "--status")
    assert code == 0, err
    status_reads = len(world.lb.stats_paths)
    assert status_reads >= 1
    code, _, err = run(world, app_path, "--resume", "--max-error-rate", "0.05")
    assert code == 0, err
    assert len(world.lb.stats_paths) > status_reads + 1 and set(world.lb.stats_paths) == {SCOPED}
