"""How long a deployment takes in the sandbox, and how much of it is zdd's own overhead.

For N instances (3, 10, 30) and a task start latency L (seconds from launch to
running, the simulator's SIM_START_DELAY_S), it deploys blue, then runs the
real zdd command (``--output json``) to deploy green, while an observer polls
the same Marathon and marathon-lb every 50 ms and asks zdd's own pure core
(``zdd.decide_swap``) whether the next step could be taken now.

For each step, zdd's overhead is the time from the moment the observer first
saw the step possible to the moment zdd decided it (both on the wall clock).
The lower bound is the total minus that overhead: what the sandbox itself
needs (tasks starting and passing health checks, marathon-lb reloading,
HAProxy draining). The target is at most one --step-delay of overhead per
step, the first check of each step happening at once.

The observer applies zdd's reload check as zdd does (--reload-check, auto by
default: for the sandbox's HTTP backend the grace, from its own reads every
50 ms; with getpids, the PIDs it reads each time), so the lower bound
includes what the check itself makes the step wait.

The second table runs the 10-instance, L = 1 s deployment several times at
each of two step delays (5 s, the default, and 1 s), and at 5 s with
``--reload-check getpids`` (what the grace costs), and gives the minimum and
the median of each figure, with zdd's requests: zdd talks to Marathon and to
the marathon-lb through counting proxies (bench/proxy.py), the marathon-lb
requests split into ``/_haproxy_getpids`` and the stats. The target there:
at the default step delay the total within 1.25x of the lower bound.
``python -m bench.deploy_time --runs N`` sets the number of runs.
"""

import argparse
import dataclasses
import datetime
import json
import statistics
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import zdd
from bench.proxy import CountingProxy
from tests.sandbox.cluster import GROUP, Cluster, zdd_command

OBSERVE_EVERY_S = 0.05
STEP_DELAY_S = 1.0
COMPARED_RUNS = ((5.0, "auto"), (1.0, "auto"), (5.0, "getpids"))  # (--step-delay, --reload-check)
COMPARED_INSTANCES = 10
COMPARED_LATENCY_S = 1.0
DEFAULT_RUNS = 5
TARGET_RATIO = 1.25
# a task's first health check a whole intervalSeconds (1 s) after it runs, as Marathon's: the sandbox's shorter
# SIM_FIRST_CHECK_S (tests/sandbox/cluster.py) would change the figures BENCHMARKS.rst compares over time
MARATHON_FIRST_CHECK = {"SIM_FIRST_CHECK_S": "1"}


def _epoch(iso):
    return datetime.datetime.fromisoformat(iso).timestamp()


class Observer:
    """Polls Marathon and every marathon-lb, recording when zdd's next step first became possible."""

    def __init__(self, cluster, plan, reload_check="auto", reload_grace_s=zdd.DEFAULT_RELOAD_GRACE_S):
        self.cluster = cluster
        self.plan = plan
        self.reload_check = reload_check
        self.reload_grace_s = reload_grace_s
        self.reads = {}  # url -> LbView: the observer's own reads in a row, as zdd tracks its own
        self.possible_at = {}  # (new instances, old instances) -> wall time
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=10)

    def _lb_view(self, lb, backend):
        with urllib.request.urlopen(lb.url + zdd.stats_path(backend), timeout=2) as reply:
            text = reply.read().decode()
        view = zdd.LbView(url=lb.url, listeners=zdd.parse_stats(text, backend), read_at=time.monotonic(),
                          worker_age_s=zdd.parse_worker_age(text))
        if zdd.reload_check_of([view], self.reload_check) == "getpids":
            with urllib.request.urlopen(lb.url + zdd.PIDS_PATH, timeout=2) as reply:  # after the stats, as zdd
                view = dataclasses.replace(view, pids=zdd.parse_pids(reply.read().decode()))
        return view

    def _decide(self, new_app, old_app, lbs):
        """zdd's decision, with its reload check: a step it must still wait for is not possible yet."""
        observation = zdd.named(zdd.Observation(new_app, old_app, lbs), zdd.resolve_host)
        if lbs:
            lbs = zdd.track_reads(self.reads, lbs, set(observation.names.values()))
            self.reads = {lb.url: lb for lb in lbs}
            observation = dataclasses.replace(observation, lbs=lbs)
        step = zdd.decide_swap(observation, self.plan, 0.0, 300)
        grace = lbs and zdd.reload_check_of(lbs, self.reload_check) == "grace"
        if (step.kill or step.delete_old) and grace and zdd.reload_wait(observation, step, self.reload_grace_s):
            return zdd.Step(wait="the reload check")
        return step

    def _run(self):
        backend = "%s_%d" % (GROUP, self.cluster.service_port)
        while not self._stop.wait(OBSERVE_EVERY_S):
            new_app = self.cluster.sim.app(self.plan.new_id)
            old_app = self.cluster.sim.app(self.plan.old_id)
            if new_app is None or old_app is None:
                continue
            try:
                lbs = () if new_app["deployments"] else tuple(self._lb_view(lb, backend) for lb in self.cluster.lbs)
            except OSError:
                continue
            step = self._decide(new_app, old_app, lbs)
            key = (new_app["instances"], old_app["instances"])
            if not step.wait and key not in self.possible_at:
                self.possible_at[key] = time.time()


def _proxy_for(url):
    parts = urllib.parse.urlsplit(url)
    return CountingProxy(parts.hostname, parts.port).start()


def _run_counted(cluster, app_path, step_delay_s, reload_check="auto"):
    """Run zdd with its Marathon and marathon-lb traffic through counting proxies; (result, counts)."""
    marathon = _proxy_for(cluster.sim.url)
    lbs = [_proxy_for(lb.url) for lb in cluster.lbs]
    try:
        argv = cluster.zdd_argv(app_path, "--output", "json", "--reload-check", reload_check,
                                step_delay_s=step_delay_s)
        start = len(zdd_command())  # "python -m zdd" has a -m of its own
        argv[argv.index("-m", start) + 1] = marathon.url
        argv[argv.index("-l", start) + 1] = ",".join(proxy.url for proxy in lbs)
        result = cluster.run(argv, timeout_s=900)
    finally:
        for proxy in [marathon, *lbs]:
            proxy.stop()
    counts = {"marathon": marathon.requests,
              "marathon_connections": marathon.connections,
              "lb_getpids": [proxy.paths[zdd.PIDS_PATH] for proxy in lbs],
              "lb_stats": [proxy.requests_to(zdd.STATS_PATH) for proxy in lbs],
              "lb_requests": [proxy.requests for proxy in lbs],
              "lb_connections": [proxy.connections for proxy in lbs]}
    return result, counts


def measure(instances, start_latency_s, step_delay_s=STEP_DELAY_S, reload_check="auto"):
    """One blue -> green deployment; a dict of figures."""
    with tempfile.TemporaryDirectory(prefix="zdd-bench-") as workdir, Cluster(workdir) as cluster:
        cluster.deploy_first(instances)
        plan = zdd.Plan(new_id="/%s-green" % GROUP, old_id="/%s-blue" % GROUP, target=instances)
        observer = Observer(cluster, plan, reload_check)
        observer.start()
        app = cluster.app(instances, SIM_START_DELAY_S=start_latency_s, **MARATHON_FIRST_CHECK)
        result, counts = _run_counted(cluster, cluster.write_app(app), step_delay_s, reload_check)
        observer.stop()
        if result.returncode != 0:
            raise RuntimeError("zdd failed (%d):\n%s" % (result.returncode, result.stderr[-2000:]))
    events = [json.loads(line) for line in result.stdout.splitlines()]
    decisions = [e for e in events if e["event"] == "poll" and e["waiting"] is None]
    overheads, late_first_checks = [], 0
    for decision in decisions:
        key = (decision["new_instances"], decision["old_instances"])
        possible = observer.possible_at.get(key)
        if possible is not None:
            overheads.append(max(0.0, _epoch(decision["time"]) - possible))
    # the first check of each step: the first poll after an action comes at once, not after a --step-delay
    for index, event in enumerate(events):
        if event["event"] in ("scaled", "killed") and index + 1 < len(events):
            following = next((e for e in events[index + 1:] if e["event"] == "poll"), None)
            if following and following["elapsed_s"] - event["elapsed_s"] >= step_delay_s:
                late_first_checks += 1
    total_s = next(e for e in events if e["event"] == "finished")["duration_s"]
    overhead_s = sum(overheads)
    return {"instances": instances, "latency_s": start_latency_s, "steps": len(decisions), "total_s": total_s,
            "lower_bound_s": total_s - overhead_s, "overhead_s": overhead_s,
            "max_step_overhead_s": max(overheads, default=0.0), "matched_steps": len(overheads),
            "late_first_checks": late_first_checks, "step_delay_s": step_delay_s, "reload_check": reload_check,
            "polls": sum(1 for e in events if e["event"] == "poll"), **counts}


def table(cases=((3, 1.0), (10, 1.0), (30, 1.0), (10, 3.0))):
    lines = ["Deployment time in the sandbox (1 marathon-lb, --step-delay %g s; overhead = zdd's decision time minus"
             " the moment an observer saw the step possible)" % STEP_DELAY_S,
             "%9s %5s %5s %8s %13s %10s %10s %8s %9s %s" % ("instances", "L s", "steps", "total s", "lower bound s",
                                                           "overhead s", "max/step s", "matched", "late 1st",
                                                           "target")]
    for instances, latency_s in cases:
        row = measure(instances, latency_s)
        holds = (row["max_step_overhead_s"] <= row["step_delay_s"] and row["late_first_checks"] == 0
                 and row["matched_steps"] == row["steps"])
        lines.append("%9d %5.1f %5d %8.1f %13.1f %10.2f %10.2f %8s %9d %s" % (
            row["instances"], row["latency_s"], row["steps"], row["total_s"], row["lower_bound_s"],
            row["overhead_s"], row["max_step_overhead_s"], "%d/%d" % (row["matched_steps"], row["steps"]),
            row["late_first_checks"], "holds" if holds else "MISSED"))
    return "\n".join(lines)


def _min_median(values, form):
    return "%s / %s" % (form % min(values), form % statistics.median(values))


def step_delay_table(runs=DEFAULT_RUNS, compared=COMPARED_RUNS):
    """The same deployment ``runs`` times at each step delay: min / median of time, lower bound and requests."""
    lines = ["Deployment time and requests by step delay (%d instances, L %g s, 1 marathon-lb, %d runs each;"
             " min / median; total/lower bound is taken per run)" % (COMPARED_INSTANCES, COMPARED_LATENCY_S, runs),
             "%5s %8s %13s %15s %13s %11s %13s %13s %13s %s" % (
                 "-s", "check", "total s", "lower bound s", "total/lower", "polls", "Marathon req", "lb getpids",
                 "lb stats", "target")]
    for step_delay_s, reload_check in compared:
        rows = [measure(COMPARED_INSTANCES, COMPARED_LATENCY_S, step_delay_s, reload_check) for _ in range(runs)]
        ratios = [row["total_s"] / row["lower_bound_s"] for row in rows]
        default = step_delay_s == zdd.DEFAULT_STEP_DELAY_S and reload_check == "auto"
        target = ("holds" if statistics.median(ratios) <= TARGET_RATIO else "MISSED") if default else "-"
        lines.append("%5g %8s %13s %15s %13s %11s %13s %13s %13s %s" % (
            step_delay_s, reload_check, _min_median([r["total_s"] for r in rows], "%.1f"),
            _min_median([r["lower_bound_s"] for r in rows], "%.1f"), _min_median(ratios, "%.2f"),
            _min_median([r["polls"] for r in rows], "%d"), _min_median([r["marathon"] for r in rows], "%d"),
            _min_median([r["lb_getpids"][0] for r in rows], "%d"),
            _min_median([r["lb_stats"][0] for r in rows], "%d"), target))
    lines.append("(requests are zdd's own, counted by a proxy: Marathon's include the 10 writes and the app"
                 " list; the marathon-lb's include zdd's check before the first write; target: at the default"
                 " step delay, the median total/lower bound at most %gx)" % TARGET_RATIO)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.deploy_time", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="runs per step delay in the second table")
    parser.add_argument("--only", choices=("cases", "step-delays"), help="print only one of the two tables")
    options = parser.parse_args(argv)
    if options.only != "step-delays":
        print(table(), flush=True)
    if options.only != "cases":
        print(step_delay_table(options.runs), flush=True)


if __name__ == "__main__":
    main()
