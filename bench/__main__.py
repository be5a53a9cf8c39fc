"""Run every benchmark and print its table: ``python -m bench`` (or ``tox -e bench``).

The figures go in BENCHMARKS.rst with a description of the machine; nothing
here passes or fails on time.
"""

import os
import platform
import sys

from bench import deploy_time, getpids_fork, poll_cost, requests_per_poll


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s, %d cores, Python %s, %s" % (cpu, os.cpu_count() or 0, platform.python_version(), platform.platform())


def main():
    print("machine: " + machine())
    for module in (poll_cost, requests_per_poll, getpids_fork, deploy_time):
        print()
        sys.stdout.flush()
        print(module.table())
    print()
    print(deploy_time.step_delay_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
