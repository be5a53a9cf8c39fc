"""The memory zdd holds during a big deployment: 1,000 instances behind 5 marathon-lbs.

The Marathon simulator (tasks as records, no processes, on the real clock)
and five fake marathon-lbs (tests/sandbox/fakelb.py, 127.0.0.1 to .5, each
rendering HAProxy 2.6's page for the simulator's apps on every read) run in
this process; zdd runs in a process of its own, blue (1,000 tasks) to green,
``--step-delay 1``. That process starts ``tracemalloc`` before it imports
zdd, and reports: the Python heap after the imports, the heap's peak during
the deployment (``tracemalloc``'s peak, imports included), and its own
maximum resident set size (``ru_maxrss``: the interpreter, the libraries,
the heap; with tracemalloc's own bookkeeping, so a bound from above). A
second run without tracemalloc gives the maximum RSS alone.

    python -m bench memory
    python -m bench.memory --before /tmp/main/zdd.py
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import zdd_labels
from tests.sandbox.clock import RealClock
from tests.sandbox.fakelb import FakeMarathonLB
from tests.sandbox.marathon import MarathonSim, RecordLauncher
from tests.sandbox.world import load_fixture

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTANCES = 1_000
LBS = 5
STEP_DELAY_S = 1.0


def group_app(instances):
    """The nginx fixture, quick health checks (the simulator checks on the real clock)."""
    app = load_fixture("1-nginx-marathon1.5.json")
    app["instances"] = instances
    app["healthChecks"][0].update(intervalSeconds=1, gracePeriodSeconds=1, timeoutSeconds=1)
    return app


# zdd's process: nothing imported before tracemalloc starts but what the interpreter itself loads
CHILD = """
import importlib.util, json, resource, sys, time, tracemalloc
zdd_path, traced, argv = sys.argv[1], sys.argv[2] == "traced", sys.argv[3:]
if traced:
    tracemalloc.start()
spec = importlib.util.spec_from_file_location("zdd", zdd_path)
module = importlib.util.module_from_spec(spec)
sys.modules["zdd"] = module
spec.loader.exec_module(module)
after_imports = tracemalloc.get_traced_memory()[0] if traced else None
started = time.monotonic()
code = module.main(argv)
figures = {"code": code, "seconds": time.monotonic() - started,
           "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
if traced:
    figures.update(imports_kb=after_imports / 1024, peak_kb=tracemalloc.get_traced_memory()[1] / 1024)
sys.stderr.write("\\nFIGURES " + json.dumps(figures) + "\\n")
sys.exit(code)
"""


def run(zdd_path=None, instances=INSTANCES, lbs=LBS, traced=True):
    """One deployment; the child's figures, with the stats reads the marathon-lbs served."""
    zdd_path = str(Path(zdd_path or REPO_ROOT / "zdd.py").resolve())
    clock = RealClock()
    sim = MarathonSim(clock=clock, launcher=RecordLauncher(clock)).start()
    fakes = []
    try:
        fakes = [FakeMarathonLB(sim, host="127.0.0.%d" % (index + 1)).start() for index in range(lbs)]
        blue = group_app(instances)
        blue.update(id="/nginx-blue")
        blue["labels"] = dict(blue["labels"], **zdd_labels("blue", 10000, instances, "2025-06-01T10:00:00"))
        sim.add_app(blue, ready=True)
        with tempfile.TemporaryDirectory(prefix="zdd-bench-memory-") as workdir:
            app_path = Path(workdir) / "app.json"
            app_path.write_text(json.dumps(group_app(instances)))
            argv = ["-m", sim.url, "-l", ",".join(fake.url for fake in fakes), "-j", str(app_path), "--force",
                    "--syslog-socket", "/dev/null", "--log-level", "WARNING", "-s", str(STEP_DELAY_S),
                    "--deadline", "900"]
            result = subprocess.run([sys.executable, "-c", CHILD, zdd_path, "traced" if traced else "plain", *argv],
                                    cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=1200)
        line = next((line for line in result.stderr.splitlines() if line.startswith("FIGURES ")), None)
        if result.returncode != 0 or line is None:
            raise RuntimeError("zdd failed (exit %d):\n%s" % (result.returncode, result.stderr[-3000:]))
        figures = json.loads(line.split(" ", 1)[1])
        figures["stats_reads"] = sum(fake.stats_polls for fake in fakes)
        return figures
    finally:
        for fake in fakes:
            fake.stop()
        sim.stop()


def table(before=None):
    lines = ["Memory of zdd's process during a %d-instance deployment behind %d fake marathon-lbs (-s %g)"
             % (INSTANCES, LBS, STEP_DELAY_S),
             "%-9s %9s %12s %14s %13s %13s %6s" % ("zdd", "seconds", "stats reads", "heap imports MB",
                                                    "heap peak MB", "max RSS MB", "(traced)")]
    for label, path in [("this zdd", None)] + ([("before", before)] if before else []):
        traced, plain = run(path), run(path, traced=False)
        lines.append("%-9s %9.1f %12d %14.1f %13.1f %13.1f %6.1f" % (
            label, plain["seconds"], plain["stats_reads"], traced["imports_kb"] / 1024, traced["peak_kb"] / 1024,
            plain["maxrss_kb"] / 1024, traced["maxrss_kb"] / 1024))
    lines.append("(heap: tracemalloc, from before zdd's import; max RSS: ru_maxrss of zdd's process run without"
                 " tracemalloc, and in the last column with it)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="ZDD_PY", help="another zdd.py to measure beside this checkout's")
    args = parser.parse_args(argv)
    print(table(args.before))
    return 0


if __name__ == "__main__":
    sys.exit(main())
