"""The one-command demo: deploy blue, then green under load, in the local sandbox.

    python -m tests.sandbox.demo [--instances 10] [--lbs 2] [--marathon 1.5]

It starts the Marathon simulator (every task a real process), one real
HAProxy per marathon-lb on 127.0.0.1, 127.0.0.2, ..., deploys the blue app
with zdd, starts clients on every marathon-lb's frontend, runs zdd again to
deploy green, and prints zdd's progress, a per-second timeline and the load
summary. Every process it started is stopped at the end, also on Ctrl-C.
Exit 0 when zdd succeeded and no request failed.
"""

import argparse
import collections
import re
import sys
import tempfile
import time

from tests.sandbox.cluster import Cluster, usable_lb_count, zdd_command

COUNTER = re.compile(r" \(waited \d+ s in this step\)$")


def timeline(load, zdd_started_s):
    """One line per second: requests by colour and failures."""
    per_second = collections.defaultdict(collections.Counter)
    for result in load.snapshot():
        per_second[int(result.t_s)]["failed" if result.failure else result.colour or "?"] += 1
    lines = [" second   blue  green  failed"]
    for second in sorted(per_second):
        counts = per_second[second]
        mark = "  <- zdd starts" if second == int(zdd_started_s) else ""
        lines.append("%7d %6d %6d %7d%s" % (second, counts["blue"], counts["green"], counts["failed"], mark))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=10, help="instances of the app")
    parser.add_argument("--lbs", type=int, default=2, help="marathon-lb instances")
    parser.add_argument("--marathon", choices=("1.4", "1.5"), default="1.5", help="Marathon response shapes")
    options = parser.parse_args(argv)
    lbs, note = usable_lb_count(options.lbs)
    if note:
        print("note: " + note)

    with tempfile.TemporaryDirectory(prefix="zdd-demo-") as workdir:
        with Cluster(workdir, lbs=lbs, marathon_version=options.marathon) as cluster:
            print("sandbox: Marathon simulator at %s, marathon-lb (HAProxy) at %s"
                  % (cluster.sim.url, ", ".join(lb.url for lb in cluster.lbs)))
            print("deploying blue: %d instances ..." % options.instances)
            cluster.deploy_first(options.instances)
            print("blue is up: %s" % cluster.apps())
            load = cluster.load()
            print("load: clients on %s" % ", ".join(cluster.frontend_urls()))
            load.start()
            try:
                time.sleep(2)
                zdd_started_s = time.monotonic() - load._started_at
                green = cluster.write_app(cluster.app(options.instances))
                argv = cluster.zdd_argv(green)
                print("\n$ zdd " + " ".join(argv[len(zdd_command()):]) + "\n")
                process = cluster.zdd_popen(green)
                previous = None
                for line in process.stderr:
                    if " zdd: " not in line or not any(word in line for word in ("step ", "Deleted", "plan:")):
                        continue
                    shown = line.split(" zdd: ", 1)[1].rstrip()
                    state = COUNTER.sub("", shown)
                    if state != previous:  # one line per change of state, not per poll
                        print("  " + shown)
                    previous = state
                process.wait()
                process.stdout.close()
                time.sleep(2)
            finally:
                load.stop()
            print("\nzdd exited with %d; apps now: %s\n" % (process.returncode, cluster.apps()))
            print(timeline(load, zdd_started_s))
            print()
            summary = load.summary().splitlines()
            per_second = summary.index("per second:")
            print("\n".join(summary[:per_second] + summary[-1:]))
    return 0 if process.returncode == 0 and load.counts()["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
