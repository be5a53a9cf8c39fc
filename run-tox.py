#!/usr/bin/env python3
"""Run tox from this checkout's own virtual environment: ``python3 run-tox.py [tox arguments]``.

It creates ``.venv`` next to this file with the Python that runs it (or
reuses it), installs tox there, and runs tox with the arguments given. So
the same command works with a system Python that refuses ``pip install``
(PEP 668: Debian 12, Ubuntu 23.04+, Homebrew), with pyenv's, and inside
another active virtual environment. Debian ships the part of Python that
makes virtual environments separately (``python3-venv``): as root this
installs it with apt-get; otherwise it says what to run. ``$ZDD_VENV`` names
another directory for the virtual environment.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV_DIR = Path(os.environ.get("ZDD_VENV") or ROOT / ".venv")
TOX_REQUIREMENT = "tox>=4"
MIN_PYTHON = (3, 9)
VENV_PACKAGE = "python3-venv"


class SetupError(Exception):
    """This machine lacks something the command cannot install: the message says what to run."""


def venv_python(venv_dir):
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def runs(argv):
    """Whether ``argv`` runs and exits 0, output hidden."""
    try:
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def venv_support_missing():
    """Why this Python cannot make a virtual environment with pip, or None when it can."""
    try:
        import ensurepip  # noqa: F401  (Debian leaves it out of python3 unless python3-venv is installed)
        import venv  # noqa: F401
    except ImportError as exc:
        return str(exc)
    return None


def install_venv_support(why, apt, is_root):
    """Install Debian's python3-venv as root; otherwise raise SetupError saying what to run."""
    if apt is None or not is_root:
        hint = ("sudo apt-get install %s" % VENV_PACKAGE) if apt else "install the venv module of this Python"
        raise SetupError(
            "%s cannot create a virtual environment (%s). Run `%s` (or use another Python %d.%d+, e.g. pyenv's), "
            "then this command again." % (sys.executable, why, hint, *MIN_PYTHON))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", VENV_PACKAGE]):
        print("run-tox: $ " + " ".join(command), flush=True)
        subprocess.run(command, check=True, env=env)


def ensure_venv():
    """The Python of a virtual environment with tox in it, made or repaired as needed."""
    python = venv_python(VENV_DIR)
    if not runs([str(python), "-m", "pip", "--version"]):
        why = venv_support_missing()
        if why:
            install_venv_support(why, shutil.which("apt-get"), hasattr(os, "geteuid") and os.geteuid() == 0)
        print("run-tox: creating %s with %s" % (VENV_DIR, sys.executable), flush=True)
        # --clear: a broken one (its Python gone, or made without pip) is made again
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV_DIR)], check=True)
    if not runs([str(python), "-c", "import tox"]):
        print("run-tox: installing %s into %s" % (TOX_REQUIREMENT, VENV_DIR), flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", TOX_REQUIREMENT], check=True)
    return python


def main(argv):
    if sys.version_info < MIN_PYTHON:
        sys.stderr.write("run-tox: zdd needs Python %d.%d or newer, this is %s\n"
                         % (MIN_PYTHON + (sys.version.split()[0],)))
        return 1
    try:
        python = ensure_venv()
    except SetupError as exc:
        sys.stderr.write("run-tox: %s\n" % exc)
        return 1
    except subprocess.CalledProcessError as exc:
        sys.stderr.write("run-tox: `%s` failed with exit code %d\n" % (" ".join(map(str, exc.cmd)), exc.returncode))
        return 1
    os.chdir(ROOT)
    command = [str(python), "-m", "tox", *argv]
    if os.name == "nt":
        return subprocess.call(command)
    os.execv(command[0], command)  # tox's exit code and signals, unchanged


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
