"""Soak: many zdd deployments back and forth under continuous load, in the sandbox.

A 10-instance group behind two marathon-lb stand-ins (real HAProxy 2.6 with
marathon-lb's own head: no ``option idle-close-on-response``, one thread per
CPU), deployed N times in a row (blue -> green -> blue ...) by the real
``zdd`` command while clients hit both frontends the whole time. zdd reaches
each marathon-lb through a counting proxy (bench/proxy.py), so every
deployment's ``/_haproxy_getpids`` and stats requests are counted. The
keep-alive clients retry a GET that a reused connection lost before any
response byte (see tests/sandbox/load.py): counted as retried, not failed.

    python -m tests.sandbox.soak --deployments 20 --getpids popen [--reload-check getpids]

``--getpids proc`` serves getpids from /proc, ``popen`` forks a command as
marathon-lb's getpids.lua does. ``--reload-check`` is passed to zdd (its
default, auto, reads no getpids for the soak's HTTP backend).
``ZDD_SANDBOX_ZDD`` runs another zdd (see tests/sandbox/cluster.py), e.g. an
older one to compare with (then leave ``--reload-check`` out).
"""

import argparse
import dataclasses
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import List

from bench.proxy import CountingProxy
from tests.sandbox.cluster import Cluster, zdd_command

INSTANCES = 10
LBS = 2
STEP_DELAY_S = 1.0
GETPIDS_PATH = "/_haproxy_getpids"
STATS_PATH = "/haproxy?stats;csv"


@dataclasses.dataclass
class Deployment:
    """One zdd run of the soak, with what it cost and what the clients saw while it ran."""

    exit_code: int
    seconds: float
    requests: int
    failed: int
    retried: int
    getpids: int  # requests to /_haproxy_getpids, every marathon-lb together
    stats: int
    stderr: str = dataclasses.field(default="", repr=False)


@dataclasses.dataclass
class SoakResult:
    getpids_kind: str
    deployments: List[Deployment]
    requests: int  # over the whole load, between deployments too
    failed: int
    retried: int
    failure_lines: List[str]
    instances: int = INSTANCES


def _zdd_argv(cluster, app_path, proxies, step_delay_s, zdd_args=()):
    argv = cluster.zdd_argv(app_path, *zdd_args, step_delay_s=step_delay_s)
    start = len(zdd_command())  # a "python -m zdd" command has a -m of its own
    argv[argv.index("-l", start) + 1] = ",".join(proxy.url for proxy in proxies)
    return argv


def _proxy_for(url):
    parts = urllib.parse.urlsplit(url)
    return CountingProxy(parts.hostname, parts.port).start()


def run_soak(cluster, deployments, step_delay_s=STEP_DELAY_S, keepalive_clients=2, fresh_clients=2, echo=None,
             zdd_args=(), instances=INSTANCES):
    """Deploy ``deployments`` times back and forth on a started ``cluster`` under load; a SoakResult.

    ``zdd_args``: more arguments for every zdd run (e.g. ``("--reload-check", "getpids")``).
    """
    cluster.seed_first(instances)
    app_path = cluster.write_app(cluster.app(instances))
    proxies = [_proxy_for(lb.url) for lb in cluster.lbs]
    load = cluster.load(keepalive_clients=keepalive_clients, fresh_clients=fresh_clients,
                        max_duration_s=deployments * 120 + 60)
    rows = []
    try:
        with load:
            time.sleep(1.0)
            for _ in range(deployments):
                mark = len(load.snapshot())
                getpids = sum(proxy.paths[GETPIDS_PATH] for proxy in proxies)
                stats = sum(proxy.requests_to(STATS_PATH) for proxy in proxies)
                started = time.monotonic()
                result = cluster.run(_zdd_argv(cluster, app_path, proxies, step_delay_s, zdd_args), timeout_s=600)
                seen = load.snapshot()[mark:]
                row = Deployment(result.returncode, time.monotonic() - started, len(seen),
                                 sum(1 for r in seen if r.failure), sum(1 for r in seen if r.retried),
                                 sum(proxy.paths[GETPIDS_PATH] for proxy in proxies) - getpids,
                                 sum(proxy.requests_to(STATS_PATH) for proxy in proxies) - stats, result.stderr)
                rows.append(row)
                if echo:
                    echo("deployment %d: exit %d in %.1f s; requests %d, failed %d, retried %d; getpids %d, stats %d"
                         % (len(rows), row.exit_code, row.seconds, row.requests, row.failed, row.retried,
                            row.getpids, row.stats))
                if result.returncode != 0:
                    break
                cluster.wait_idle()
            time.sleep(1.0)
    finally:
        for proxy in proxies:
            proxy.stop()
    counts = load.counts()
    failures = ["  %.3fs %s %s %s" % (r.t_s, r.lb, r.failure, r.detail) for r in load.failures()]
    return SoakResult(cluster.lbs[0].haproxy.getpids_kind, rows, counts["requests"], counts["failed"],
                      counts["retried"], failures, instances)


def summary(result):
    rows = result.deployments
    per = len(rows) or 1
    lines = ["soak: %d deployments (%d instances, %d marathon-lbs, getpids %s): requests %d, failed %d, retried %d"
             % (len(rows), result.instances, LBS, result.getpids_kind, result.requests, result.failed, result.retried),
             "  per deployment: %.1f s, getpids %.1f, stats %.1f (every marathon-lb together); failed in %d of %d"
             % (sum(r.seconds for r in rows) / per, sum(r.getpids for r in rows) / per,
                sum(r.stats for r in rows) / per, sum(1 for r in rows if r.failed), len(rows))]
    return "\n".join(lines + result.failure_lines[:20])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployments", type=int, default=20)
    parser.add_argument("--getpids", choices=("proc", "popen"), default="proc")
    parser.add_argument("--step-delay", type=float, default=STEP_DELAY_S)
    parser.add_argument("--reload-check", help="zdd's --reload-check (default: zdd's own)")
    options = parser.parse_args(argv)
    zdd_args = ("--reload-check", options.reload_check) if options.reload_check else ()
    with tempfile.TemporaryDirectory(prefix="zdd-soak-") as workdir, \
            Cluster(Path(workdir), lbs=LBS, getpids=options.getpids, head="marathon-lb") as cluster:
        result = run_soak(cluster, options.deployments, options.step_delay, echo=print, zdd_args=zdd_args)
    print(summary(result))
    ok = all(row.exit_code == 0 for row in result.deployments) and len(result.deployments) == options.deployments
    return 0 if ok and result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
