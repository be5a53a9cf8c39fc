"""What one poll costs zdd's pure core at scale.

For N tasks (40 % new, 60 % old, some old ones draining) behind M marathon-lb
instances, it builds the stats CSV each marathon-lb would serve (HAProxy
2.6's 128-column rows) and times what zdd does with one poll: parse M stats
pages and decide the next step (match listeners to tasks, check drains).
Reports microseconds per task and the growth from N to 10 N, which should
stay near 10x (no quadratic matching).
"""

import statistics
import time
from pathlib import Path

import zdd

HEADER = (Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "haproxy26_stats.csv").read_text()
HEADER = next(line for line in HEADER.splitlines() if line.startswith("#"))
COLUMNS = HEADER.lstrip("# ").rstrip(",").split(",")
BACKEND = "nginx_10000"


def make_app(app_id, count, first_port):
    tasks = [{"id": f"{app_id.strip('/')}.{i:08d}", "host": f"10.0.{i // 250}.{i % 250 + 1}", "state": "TASK_RUNNING",
              "ports": [first_port + i], "healthCheckResults": [{"alive": True}]} for i in range(count)]
    return {"id": app_id, "instances": count, "tasks": tasks, "deployments": [], "healthChecks": [{"path": "/"}],
            "labels": {"HAPROXY_DEPLOYMENT_GROUP": "nginx", "HAPROXY_0_PORT": "10000"}}


def stats_page(new_app, old_app, draining):
    rows = [HEADER]
    blank = dict.fromkeys(COLUMNS, "")

    def row(svname, status, scur=0):
        values = dict(blank, pxname=BACKEND, svname=svname, status=status, scur=str(scur), qcur="0")
        return ",".join(values[column] for column in COLUMNS) + ","

    rows.append(row("FRONTEND", "OPEN"))
    for app in (new_app, old_app):
        for index, task in enumerate(app["tasks"]):
            name = zdd.server_name(task["host"], task["host"], task["ports"][0])
            maint = app is old_app and index < draining
            rows.append(row(name, "MAINT" if maint else "UP"))
    rows.append(row("BACKEND", "UP"))
    return "\n".join(rows) + "\n"


def measure(tasks, lbs, repeats=5):
    """Median seconds of one poll's pure work for ``tasks`` tasks behind ``lbs`` marathon-lbs."""
    new_count = tasks * 2 // 5  # mid-deployment: 40 % new, 60 % old, the target is the old size
    old_count = tasks - new_count
    new_app, old_app = make_app("/nginx-green", new_count, 20000), make_app("/nginx-blue", old_count, 40000)
    target = old_count
    draining = zdd.expected_draining(new_count, old_count, old_count, target)
    page = stats_page(new_app, old_app, draining)
    plan = zdd.Plan(new_id=new_app["id"], old_id=old_app["id"], target=target)
    resolve = str  # hosts are IP literals
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        views = tuple(zdd.LbView(url=f"lb{i}", pids=2, listeners=zdd.parse_stats(page, BACKEND)) for i in range(lbs))
        step = zdd.decide(zdd.named(zdd.Observation(new_app, old_app, views), resolve), plan, 0.0, 300)
        samples.append(time.perf_counter() - started)
    assert step.kill, "the benchmark's world should allow a kill"
    return statistics.median(samples)


def table():
    lines = ["Poll cost (pure core: parse M stats pages + decide), median of 5",
             f"{'tasks':>7} {'LBs':>4} {'ms/poll':>9} {'us/task':>8} {'x vs N/10':>10}"]
    for lbs in (1, 3, 5):
        previous = None
        for tasks in (100, 1_000, 10_000):
            seconds = measure(tasks, lbs)
            growth = f"{seconds / previous:.1f}x" if previous else "-"
            lines.append(f"{tasks:>7} {lbs:>4} {seconds * 1e3:>9.2f} {seconds * 1e6 / tasks:>8.2f} {growth:>10}")
            previous = seconds
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
