"""A real HAProxy 2.6 run the way marathon-lb runs it: stats, getpids, seamless reloads."""

import csv
import dataclasses
import http.client
import io
import threading
import time
from pathlib import Path

import pytest

from bench.getpids_fork import getpids_under_load
from tests.helpers import wait_for
from tests.sandbox.fakelb import scoped, stats_scope
from tests.sandbox.haproxy import Server, Service
from tests.sandbox.load import LoadGenerator
from tests.sandbox.tasks import free_port

pytestmark = pytest.mark.e2e

FIXTURE_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "haproxy26_stats_sandbox.csv"


def stats_rows(instance):
    """{(pxname, svname): row dict} from the live stats CSV."""
    text = instance.stats_csv()
    header = text.splitlines()[0].lstrip("# ")
    rows = csv.DictReader(io.StringIO(header + "\n" + "\n".join(text.splitlines()[1:])))
    return {(row["pxname"], row["svname"]): row for row in rows}


def launch(sandbox, colour, count, **labels):
    """``count`` real task processes of /nginx-<colour>; the Servers for them, once healthy."""
    app = {"id": "/nginx-" + colour,
           "labels": dict({"HAPROXY_DEPLOYMENT_COLOUR": colour}, **{k: str(v) for k, v in labels.items()})}
    servers = []
    for index in range(count):
        task_id = "nginx-%s.%d" % (colour, index)
        placement = sandbox.launcher.launch(app, task_id, False, [80])
        port = placement.ports[0]
        servers.append(Server("127_0_0_1_%d" % port, "127.0.0.1", port))
        servers[-1].task_id = task_id
    deadline = time.monotonic() + 10
    while not all(sandbox.launcher.check_health(server.task_id).healthy for server in servers):
        assert time.monotonic() < deadline, "tasks did not come up"
        time.sleep(0.05)
    return servers


def test_stats_follow_added_removed_and_disabled_servers(sandbox):
    lb = sandbox.haproxy()
    blue = launch(sandbox, "blue", 2)
    green = launch(sandbox, "green", 1)
    port = free_port()
    name = "nginx_%d" % port
    lb.start(lb.render([Service(name, port, blue)]))
    rows = stats_rows(lb)
    assert [rows[(name, server.name)]["status"] for server in blue] == ["no check", "no check"]

    drained = [dataclasses.replace(blue[0], draining=True), blue[1]] + green
    assert lb.reload(lb.render([Service(name, port, drained)]))
    rows = stats_rows(lb)
    assert rows[(name, blue[0].name)]["status"] == "MAINT"
    assert rows[(name, blue[1].name)]["status"] == "no check"
    assert rows[(name, green[0].name)]["status"] == "no check"

    FIXTURE_CSV.parent.mkdir(exist_ok=True)
    live_header = lb.stats_csv().splitlines()[0]
    if FIXTURE_CSV.exists():
        # The committed capture came from this same HAProxy: same columns.
        assert FIXTURE_CSV.read_text().splitlines()[0] == live_header
        assert len(live_header.lstrip("# ").rstrip(",").split(",")) == 128

    assert lb.reload(lb.render([Service(name, port, [blue[1]] + green)]))
    rows = stats_rows(lb)
    assert (name, blue[0].name) not in rows
    assert {svname for (pxname, svname) in rows if pxname == name} == {
        "FRONTEND", "BACKEND", blue[1].name, green[0].name}


def test_checked_servers_are_up_and_disabled_ones_maint(sandbox):
    lb = sandbox.haproxy()
    blue = launch(sandbox, "blue", 2)
    port = free_port()
    name = "nginx_%d" % port
    lb.start(lb.render([Service(name, port, blue, checked=True, health_check_path="/health")]))
    wait_for(lambda: all(stats_rows(lb)[(name, server.name)]["status"] == "UP" for server in blue),
             what="servers UP")
    servers = [dataclasses.replace(blue[0], draining=True), blue[1]]
    lb.reload(lb.render([Service(name, port, servers, checked=True, health_check_path="/health")]))
    rows = stats_rows(lb)
    assert rows[(name, blue[0].name)]["status"] == "MAINT"
    assert rows[(name, blue[1].name)]["status"] == "UP"


def test_reload_only_when_the_config_changed(sandbox):
    lb = sandbox.haproxy()
    port = free_port()
    config = lb.render([Service("nginx_%d" % port, port, [])])
    lb.start(config)
    before = lb.pids()
    assert lb.reload(config) is False
    assert lb.pids() == before and lb.reload_durations_s == []


def test_getpids_counts_this_instance_only(sandbox):
    lb = sandbox.haproxy("lb")
    other = sandbox.haproxy("other")
    slow = launch(sandbox, "blue", 1, SIM_SLOW_MS=5000)  # time for two reloads and a getpids on a busy machine
    port = free_port()
    name = "nginx_%d" % port
    lb.start(lb.render([Service(name, port, slow)]))
    other.start(other.render([Service("other_%d" % free_port(), free_port(), [])]))

    at_rest = lb.getpids()
    assert len(at_rest) == 2 and at_rest == lb.pids()
    assert at_rest[0] == lb.process.pid
    assert not set(at_rest) & set(other.getpids())

    # A request in flight on the current worker holds it through a reload.
    answers = []

    def slow_request():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/slow")
        answers.append(connection.getresponse().status)
        connection.close()

    def in_flight():
        rows = csv.DictReader(lb.stats_csv().lstrip("# ").splitlines())
        return any(row["pxname"] == name and row["svname"] not in ("FRONTEND", "BACKEND") and row["scur"] == "1"
                   for row in rows)

    holder = threading.Thread(target=slow_request)
    holder.start()
    try:
        wait_for(in_flight, what="the slow request to reach the task")
        other.reload(other.render([Service("other_%d" % free_port(), free_port(), [])]))
        assert lb.reload(lb.render([Service(name, port, slow), Service("extra_%d" % free_port(), free_port(), [])]))
        during = lb.getpids()
        assert holder.is_alive(), "the slow request ended before the PIDs were read: the old worker could exit"
        assert len(during) == 3, during
        assert during[0] == at_rest[0] and at_rest[1] in during
        assert sorted(during) == sorted(lb.pids())
        assert not set(during) & set(other.getpids())
    finally:
        holder.join()
    assert answers == [200]
    after = wait_for(lambda: len(lb.getpids()) == 2 and lb.getpids(), what="old worker to exit")
    assert at_rest[1] not in after and after[0] == at_rest[0]
    assert len(other.getpids()) == 2


def zdd_like_reloads(lb, name, port, blue, green, reloads, pause_s):
    """Reload through the states a blue/green swap goes through, ``reloads`` times."""
    for step in range(reloads):
        draining = step % 2 == 1
        old = [dataclasses.replace(server, draining=draining) for server in blue]
        if not draining:
            # A server name is never re-enabled once disabled, as in a swap:
            # the next round's old tasks are fresh ones.
            for server in old:
                server.name = "%s_r%d" % (server.name.split("_r")[0], step)
        lb.reload(lb.render([Service(name, port, old + green)]))
        time.sleep(pause_s)


def reloads_under_load(sandbox, keepalive_clients, fresh_clients, reloads, pause_s, retry_idle_close=False,
                       **haproxy_options):
    """Swap-like reloads of a real HAProxy while clients hit its frontend; returns (lb, load)."""
    lb = sandbox.haproxy(**haproxy_options)
    blue = launch(sandbox, "blue", 2)
    green = launch(sandbox, "green", 2)
    port = free_port()
    name = "nginx_%d" % port
    lb.start(lb.render([Service(name, port, blue)]))
    load = LoadGenerator(["http://127.0.0.1:%d/" % port], keepalive_clients=keepalive_clients,
                         fresh_clients=fresh_clients, max_duration_s=60, retry_idle_close=retry_idle_close)
    with load:
        time.sleep(pause_s)
        zdd_like_reloads(lb, name, port, blue, green, reloads=reloads, pause_s=pause_s)
        time.sleep(pause_s)
    print(load.summary())
    return lb, load


def test_reload_under_load_loses_no_request(sandbox):
    lb, load = reloads_under_load(sandbox, keepalive_clients=4, fresh_clients=4, reloads=10, pause_s=0.4)
    print("reload times: " + " ".join("%.3fs" % seconds for seconds in lb.reload_durations_s))
    counts = load.counts()
    assert len(lb.reload_durations_s) == 10
    assert counts["requests"] > 3000
    assert set(counts["by_colour"]) == {"blue", "green"}
    # option idle-close-on-response (see render_config): an old worker answers
    # the next request of each idle keep-alive connection before closing it,
    # so not even a keep-alive request written during a reload is lost.
    assert counts["failed"] == 0, load.summary()
    wait_for(lambda: len(lb.pids()) == 2, what="old workers to exit")


def test_reload_loses_no_request_on_fresh_connections(sandbox):
    _, load = reloads_under_load(sandbox, keepalive_clients=0, fresh_clients=6, reloads=8, pause_s=0.3)
    counts = load.counts()
    assert counts["requests"] > 2000
    assert counts["failed"] == 0, load.summary()


@pytest.mark.long
def test_without_idle_close_on_response_a_retrying_client_loses_nothing(sandbox):
    """marathon-lb's own head: at a reload the old worker closes idle keep-alive connections at once, and a
    request written at that instant gets no response byte; a client that retries it as RFC 9112 9.3.1
    allows (see tests/sandbox/load.py) loses nothing."""
    lb, load = reloads_under_load(sandbox, keepalive_clients=6, fresh_clients=2, reloads=60, pause_s=0.25,
                                  head="marathon-lb", retry_idle_close=True)
    counts = load.counts()
    print("marathon-lb head, %d reloads: %s" % (len(lb.reload_durations_s), counts))
    assert counts["requests"] > 3000
    assert counts["failed"] == 0, load.summary()


@pytest.mark.parametrize("options", [dict(getpids="proc"), dict(getpids="popen", nbthread=1)],
                         ids=["proc-lua", "fork-nbthread-1"])
def test_getpids_remedies_lose_no_request(sandbox, options):
    """The README's two remedies for marathon-lb's forking getpids, with its head, read 10 times a second."""
    haproxy = sandbox.haproxy(head="marathon-lb", **options)
    counts, calls, odd = getpids_under_load(haproxy, launch(sandbox, "blue", 2), seconds=15)
    print("getpids %s: %d calls, %s" % (options, calls, counts))
    assert calls > 50 and odd == 0
    assert counts["requests"] > 2000
    assert counts["failed"] == 0, counts


SCOPE_PROXIES = ["nginx_10000", "nginx_100000", "NGINX_10001", "other_20000", "a_very_long_group_name_30000",
                 "a_very_long_group_name_30001"]
SCOPE_QUERIES = ["", ";scope=nginx_10000", ";scope=NGINX_1", ";scope=a_very_long_group_name_30001",
                 ";scope=ong_group_name_30001", ";scope=nginx%5F10000", ";scope=a/b", ";scope=x:y", ";scope=stats",
                 ";scope=nothing"]


def test_the_stats_scope_is_what_the_fake_does(sandbox):
    """HAProxy 2.6's ``;scope=``: a proxy's every row, by substring of its name ignoring case, 20 characters,
    no decoding, no scope at all for a character outside a proxy name's; the fake marathon-lb does the same."""
    lb = sandbox.haproxy()
    lb.start(lb.render([Service(name, free_port(), [Server("127_0_0_1_%d" % (1 + index), "127.0.0.1", 1 + index)])
                        for index, name in enumerate(SCOPE_PROXIES)]))

    def table(text):
        return [tuple(line.split(",")[:2]) for line in text.splitlines()[1:]]

    whole = lb.stats_csv()
    for query in SCOPE_QUERIES:
        assert table(lb.stats_csv(query)) == table(scoped(whole, stats_scope("stats;csv" + query))), query
    assert {name for name, _ in table(lb.stats_csv(";scope=nginx_10000"))} == {"nginx_10000", "nginx_100000"}
    assert [row for row in table(lb.stats_csv(";scope=nginx_10000")) if row[0] == "nginx_10000"] == [
        ("nginx_10000", "FRONTEND"), ("nginx_10000", "127_0_0_1_1"), ("nginx_10000", "BACKEND")]
    assert {name for name, _ in table(lb.stats_csv(";scope=a_very_long_group_name_30001"))} == {
        "a_very_long_group_name_30000", "a_very_long_group_name_30001"}  # its first 20 characters
    assert {name for name, _ in table(lb.stats_csv(";scope=ong_group_name_30001"))} == {
        "a_very_long_group_name_30001"}  # 20 characters: the tail zdd asks for
    assert table(lb.stats_csv(";scope=a/b")) == table(whole) and table(lb.stats_csv(";scope=x:y")) == []
    lb.ignore_scope = True
    lb.reload(lb.render([]))
    assert table(lb.stats_csv(";scope=stats")) == table(lb.stats_csv()) and len(table(lb.stats_csv())) == 2
