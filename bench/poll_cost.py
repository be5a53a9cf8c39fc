"""What one poll costs zdd's pure core at scale.

For N tasks (40 % new, 60 % old, some old ones draining) behind M marathon-lb
instances, it builds the stats CSV each marathon-lb would serve (HAProxy
2.6's 128-column rows) and times what zdd does with one poll: parse M stats
pages and decide the next step (match listeners to tasks, check drains).
Reports microseconds per task and the growth from N to 10 N, which should
stay near 10x (no quadratic matching).

The second table puts 1,000 other apps of 10 servers on every marathon-lb
and gives zdd the page HAProxy 2.6 answers its stats request with (the scope
of ``zdd.stats_path``, applied as the fake marathon-lb applies it, which the
e2e tests check against the real HAProxy): a poll should cost what it costs
without them. Were zdd to read the whole page again, this table would show it.
"""

import statistics
import time
from pathlib import Path

import zdd
from tests.sandbox.fakelb import scoped, stats_scope

HEADER = (Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "haproxy26_stats.csv").read_text()
HEADER = next(line for line in HEADER.splitlines() if line.startswith("#"))
COLUMNS = HEADER.lstrip("# ").rstrip(",").split(",")
BACKEND = "nginx_10000"
OTHER_APPS = 1_000
OTHER_SERVERS = 10


def make_app(app_id, count, first_port):
    tasks = [{"id": f"{app_id.strip('/')}.{i:08d}", "host": f"10.0.{i // 250}.{i % 250 + 1}", "state": "TASK_RUNNING",
              "ports": [first_port + i], "healthCheckResults": [{"alive": True}]} for i in range(count)]
    return {"id": app_id, "instances": count, "tasks": tasks, "deployments": [], "healthChecks": [{"path": "/"}],
            "labels": {"HAPROXY_DEPLOYMENT_GROUP": "nginx", "HAPROXY_0_PORT": "10000"}}


def _apps(tasks):
    """(new app, old app) mid-deployment: 40 % new, 60 % old, the target is the old size."""
    new_count = tasks * 2 // 5
    return make_app("/nginx-green", new_count, 20000), make_app("/nginx-blue", tasks - new_count, 40000)


def stats_page(new_app, old_app, draining, other_apps=0):
    """The whole stats page: the group's proxy, then ``other_apps`` apps' (FRONTEND, servers, BACKEND)."""
    rows = [HEADER]
    blank = dict.fromkeys(COLUMNS, "")

    def row(svname, status, scur=0, pxname=BACKEND):
        values = dict(blank, pxname=pxname, svname=svname, status=status, scur=str(scur), qcur="0")
        return ",".join(values[column] for column in COLUMNS) + ","

    rows.append(row("FRONTEND", "OPEN"))
    for app in (new_app, old_app):
        for index, task in enumerate(app["tasks"]):
            name = zdd.server_name(task["host"], task["host"], task["ports"][0])
            maint = app is old_app and index < draining
            rows.append(row(name, "MAINT" if maint else "UP"))
    rows.append(row("BACKEND", "UP"))
    for index in range(other_apps):
        pxname = "team-%d_app-%d_%d" % (index % 37, index, 20000 + index)
        rows.append(row("FRONTEND", "OPEN", pxname=pxname))
        rows += [row("10_0_%d_%d_%d" % (index // 250, index % 250, 31000 + server), "UP", pxname=pxname)
                 for server in range(OTHER_SERVERS)]
        rows.append(row("BACKEND", "UP", pxname=pxname))
    return "\n".join(rows) + "\n"


def served_page(page):
    """What HAProxy 2.6 answers zdd's stats request with, for the whole ``page``."""
    return scoped(page, stats_scope(zdd.stats_path(BACKEND).partition("?")[2]))


def measure(tasks, lbs, repeats=5, other_apps=0, whole=False):
    """Median seconds of one poll's pure work for ``tasks`` tasks behind ``lbs`` marathon-lbs.

    ``other_apps``: that many more apps on every marathon-lb, the page then as HAProxy answers zdd's
    request (``whole``: the whole page, as a zdd without the scope, or an HAProxy ignoring it, has it).
    """
    new_app, old_app = _apps(tasks)
    new_count, old_count = new_app["instances"], old_app["instances"]
    target = old_count
    draining = zdd.expected_draining(new_count, old_count, old_count, target)
    page = stats_page(new_app, old_app, draining, other_apps)
    page = page if whole else served_page(page)
    plan = zdd.Plan(new_id=new_app["id"], old_id=old_app["id"], target=target)
    resolve = str  # hosts are IP literals
    samples = []
    for _ in range(repeats):
        started = time.process_time()  # CPU time: the machine may be shared
        views = tuple(zdd.LbView(url=f"lb{i}", pids=(4001, 4002), listeners=zdd.parse_stats(page, BACKEND))
                      for i in range(lbs))
        step = zdd.decide_swap(zdd.named(zdd.Observation(new_app, old_app, views), resolve), plan, 0.0, 300)
        samples.append(time.process_time() - started)
    assert step.kill, "the benchmark's world should allow a kill"
    return statistics.median(samples)


def table():
    lines = ["Poll cost (pure core: parse M stats pages + decide; CPU time), median of 5",
             f"{'tasks':>7} {'LBs':>4} {'ms/poll':>9} {'us/task':>8} {'x vs N/10':>10}"]
    for lbs in (1, 3, 5):
        previous = None
        for tasks in (100, 1_000, 10_000):
            seconds = measure(tasks, lbs)
            growth = f"{seconds / previous:.1f}x" if previous else "-"
            lines.append(f"{tasks:>7} {lbs:>4} {seconds * 1e3:>9.2f} {seconds * 1e6 / tasks:>8.2f} {growth:>10}")
            previous = seconds
    lines += ["", "Poll cost with %d other apps of %d servers on every marathon-lb (the page as HAProxy answers"
                  " zdd's request), median of 5" % (OTHER_APPS, OTHER_SERVERS),
              f"{'tasks':>7} {'LBs':>4} {'ms alone':>9} {'ms beside':>10} {'ratio':>6} {'bytes':>8}"
              f" {'ms whole page':>14} {'whole bytes':>12}"]
    for lbs in (1, 5):
        for tasks in (100, 1_000):
            alone, beside = measure(tasks, lbs), measure(tasks, lbs, other_apps=OTHER_APPS)
            whole = measure(tasks, lbs, other_apps=OTHER_APPS, whole=True)
            page = stats_page(*_apps(tasks), 0, OTHER_APPS)
            lines.append(f"{tasks:>7} {lbs:>4} {alone * 1e3:>9.2f} {beside * 1e3:>10.2f} {beside / alone:>5.2f}x"
                         f" {len(served_page(page)):>8} {whole * 1e3:>14.2f} {len(page):>12}")
    lines.append("(ms whole page: the same poll had zdd read every app's rows, as it did before the scope)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
