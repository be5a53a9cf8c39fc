"""How many HTTP requests one zdd poll makes, and how many TCP connections a deployment opens.

A 10-instance blue -> green deployment in the sandbox (Marathon simulator with
HTTP/1.1 keep-alive, as Marathon serves it; 2 marathon-lbs), with zdd talking
to Marathon and to each marathon-lb through a counting TCP proxy
(bench/proxy.py), and ``--output json`` to count its polls.
"""

import json
import tempfile

from bench.deploy_time import MARATHON_FIRST_CHECK, _run_counted
from tests.sandbox.cluster import Cluster

INSTANCES = 10
LBS = 2


def measure(step_delay_s=1.0):
    with tempfile.TemporaryDirectory(prefix="zdd-bench-") as workdir, \
            Cluster(workdir, lbs=LBS, keep_alive=True) as cluster:
        cluster.deploy_first(INSTANCES)
        app = cluster.app(INSTANCES, **MARATHON_FIRST_CHECK)
        result, counts = _run_counted(cluster, cluster.write_app(app), step_delay_s)
    if result.returncode != 0:
        raise RuntimeError("zdd failed:\n" + result.stderr[-2000:])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    return {"polls": sum(1 for e in events if e["event"] == "poll"),
            "lb_polls": sum(1 for e in events if e["event"] == "poll" and e["lbs"]),
            "writes": sum(1 for e in events if e["event"] in ("created", "killed", "scaled", "deleted")),
            "marathon": (counts["marathon"], counts["marathon_connections"]),
            "lbs": list(zip(counts["lb_requests"], counts["lb_connections"], counts["lb_getpids"],
                            counts["lb_stats"])),
            "duration_s": events[-1]["duration_s"]}


def table():
    row = measure()
    polls = row["polls"]
    requests, connections = row["marathon"]
    lines = ["Requests per poll and connections (%d instances, %d marathon-lbs, --step-delay 1 s, %.1f s, %d polls,"
             " %d of them reading the marathon-lbs)" % (INSTANCES, LBS, row["duration_s"], polls, row["lb_polls"]),
             "%-14s %9s %10s %12s %8s %6s" % ("endpoint", "requests", "per poll", "connections", "getpids", "stats"),
             "%-14s %9d %10.2f %12d" % ("Marathon", requests, (requests - row["writes"] - 1) / polls, connections)]
    for index, (lb_requests, lb_connections, getpids, stats) in enumerate(row["lbs"]):
        lines.append("%-14s %9d %10.2f %12d %8d %6d" % ("marathon-lb %d" % (index + 1), lb_requests,
                                                        lb_requests / max(1, row["lb_polls"]), lb_connections,
                                                        getpids, stats))
    lines.append("(Marathon per poll: its requests less the %d writes and the one app list; marathon-lb per poll:"
                 " per poll that reads it, plus zdd's check before the first write; getpids and stats: the GETs of"
                 " each path. zdd keeps one connection to Marathon; to each marathon-lb it opens one per poll (and"
                 " one more for getpids before a kill or the delete) and closes it before sleeping, since an idle"
                 " keep-alive connection keeps an old HAProxy worker alive after a reload)" % row["writes"])
    return "\n".join(lines)


if __name__ == "__main__":
    print(table())
