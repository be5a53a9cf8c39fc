"""Run every benchmark and print its table: ``python -m bench`` (or ``tox -e bench``).

``python -m bench big_lb memory`` runs only the ones named.

The figures go in BENCHMARKS.rst with a description of the machine; nothing
here passes or fails on time.
"""

import os
import platform
import sys

from bench import big_lb, deploy_time, getpids_fork, memory, poll_cost, requests_per_poll

BENCHMARKS = {"poll_cost": poll_cost, "big_lb": big_lb, "requests_per_poll": requests_per_poll,
              "getpids_fork": getpids_fork, "deploy_time": deploy_time, "memory": memory}


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s, %d cores, Python %s, %s" % (cpu, os.cpu_count() or 0, platform.python_version(), platform.platform())


def main(argv=None):
    names = sys.argv[1:] if argv is None else argv
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print("unknown benchmark(s): %s; there are: %s" % (", ".join(unknown), ", ".join(BENCHMARKS)),
              file=sys.stderr)
        return 2
    print("machine: " + machine())
    for name in names or BENCHMARKS:
        print()
        sys.stdout.flush()
        print(BENCHMARKS[name].table())
        if name == "deploy_time":
            print()
            print(deploy_time.step_delay_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
