"""Keep a sandbox up to try zdd by hand: ``tox -e sandbox``, or ``python -m tests.sandbox.up``.

    python -m tests.sandbox.up [--instances 3] [--lbs 2] [--marathon 1.5] [--env-file zdd-sandbox.env]
                               [--minutes 60]

It starts the Marathon simulator (every task a real process) and the
marathon-lbs (one real HAProxy each, on 127.0.0.1, 127.0.0.2, ...), deploys a
blue app with zdd, prints the URLs and a zdd command line ready to paste, and
writes the ZDD_* variables to ``--env-file`` for a shell to source (``.
zdd-sandbox.env && zdd -f``). Each zdd run then deploys the other colour.
Ctrl-C, SIGTERM or the end of ``--minutes`` stops every process it started and
removes the file, so the file exists exactly while the sandbox is up.
"""

import argparse
import os
import shlex
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.sandbox.cluster import Cluster, usable_lb_count, zdd_command

DEFAULT_ENV_FILE = "zdd-sandbox.env"
DEFAULT_MINUTES = 60
STEP_DELAY_S = 0.5


def env_file_text(cluster, app_path):
    """The ZDD_* variables for this sandbox, as shell ``export`` lines."""
    variables = [
        ("ZDD_MARATHON", cluster.sim.url),
        ("ZDD_MARATHON_LB", ",".join(lb.url for lb in cluster.lbs)),
        ("ZDD_JSON", str(app_path)),
        ("ZDD_SYSLOG_SOCKET", "/dev/null"),
        ("ZDD_STEP_DELAY", str(STEP_DELAY_S)),
        ("ZDD_LOG_LEVEL", "INFO"),
    ]
    lines = ["# the zdd sandbox (python -m tests.sandbox.up, pid %d); removed when it stops" % os.getpid()]
    lines += ["export %s=%s" % (name, shlex.quote(value)) for name, value in variables]
    lines.append("# the app behind the marathon-lbs: %s" % " ".join(cluster.frontend_urls()))
    return "\n".join(lines) + "\n"


def write_atomically(path, text):
    """Write ``text`` to ``path`` so that a reader never sees half of it."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def _stop(signum, frame):
    # A second Ctrl-C must not cut the cleanup short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.sandbox.up", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=3, help="instances of the blue app")
    parser.add_argument("--lbs", type=int, default=2, help="marathon-lb instances")
    parser.add_argument("--marathon", choices=("1.4", "1.5"), default="1.5", help="Marathon response shapes")
    parser.add_argument("--env-file", default=DEFAULT_ENV_FILE, help="where to write the ZDD_* variables")
    parser.add_argument("--minutes", type=float, default=DEFAULT_MINUTES, help="stop by itself after this long")
    parser.add_argument("--workdir", help="directory for the sandbox's files (default: a new temporary one)")
    options = parser.parse_args(argv)
    env_file = Path(options.env_file).resolve()
    lbs, note = usable_lb_count(options.lbs)
    if note:
        print("note: " + note, flush=True)

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    how = "after %g minutes" % options.minutes
    written = False
    try:
        with tempfile.TemporaryDirectory(prefix="zdd-sandbox-", dir=options.workdir) as workdir:
            with Cluster(workdir, lbs=lbs, marathon_version=options.marathon) as cluster:
                print("starting: Marathon simulator, %d marathon-lb(s), blue with %d instance(s) ..."
                      % (lbs, options.instances), flush=True)
                cluster.deploy_first(options.instances)
                app_path = cluster.write_app(cluster.app(options.instances))
                zdd = shlex.join(cluster.zdd_argv(app_path, step_delay_s=STEP_DELAY_S))
                print(
                    "\nsandbox up: %s\n"
                    "  Marathon simulator   %s   (e.g. curl %s/v2/apps)\n"
                    "  marathon-lb stats    %s\n"
                    "  the app through them %s   (each answer names its colour)\n"
                    "  the app JSON         %s   (edit it freely: zdd deploys what it says)\n\n"
                    "Deploy the other colour, from another terminal:\n\n  %s\n\n"
                    "or with the variables of %s:\n\n  . %s && %s -f\n\n"
                    "Ctrl-C stops the sandbox (it stops by itself after %g minutes)."
                    % (cluster.apps(), cluster.sim.url, cluster.sim.url, ", ".join(lb.url for lb in cluster.lbs),
                       ", ".join(cluster.frontend_urls()), app_path, zdd, env_file, shlex.quote(str(env_file)),
                       shlex.join(zdd_command()), options.minutes),
                    flush=True,
                )
                write_atomically(env_file, env_file_text(cluster, app_path))
                written = True
                end_s = time.monotonic() + options.minutes * 60
                while time.monotonic() < end_s:
                    time.sleep(min(1.0, max(0.0, end_s - time.monotonic())))
    except KeyboardInterrupt:
        how = "on a signal"
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if written:
            env_file.unlink(missing_ok=True)
    print("\nsandbox stopped %s: every process it started is gone, %s removed" % (how, env_file.name), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
