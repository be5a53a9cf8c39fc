"""run-tox.py makes or reuses a virtual environment with tox, and passes tox's exit code on (pytest's 5 too)."""

import os
import subprocess
import sys

import pytest

from tests.sandbox.cluster import REPO_ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.long]

SCRIPT = str(REPO_ROOT / "run-tox.py")
TIMEOUT_S = 300


def run_tox(venv_dir, *args):
    # as from a shell: none of the variables of the tox run these tests may be in
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TOX_", "_TOX"))}
    env.update(ZDD_VENV=str(venv_dir))
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT_S)


def test_run_tox_creates_then_reuses_then_repairs_its_venv(tmp_path):
    venv_dir = tmp_path / "venv"
    first = run_tox(venv_dir, "--version")
    assert first.returncode == 0, first.stdout
    assert "creating %s" % venv_dir in first.stdout and "installing tox" in first.stdout
    assert "from %s" % venv_dir in first.stdout  # tox --version names where it runs from

    again = run_tox(venv_dir, "--version")
    assert again.returncode == 0, again.stdout
    assert "creating" not in again.stdout and "installing" not in again.stdout

    (venv_dir / "bin" / "python").unlink()  # e.g. the Python it was made with is gone
    repaired = run_tox(venv_dir, "--version")
    assert repaired.returncode == 0, repaired.stdout
    assert "creating %s" % venv_dir in repaired.stdout


def test_no_tests_collected_fails_the_command(tmp_path):
    """pytest's exit 5 (no tests ran) is a failure of the README's command, not a pass."""
    # -n 0: one process collects the tests, not py3's four workers each
    result = run_tox(tmp_path / "venv", "--workdir", str(tmp_path / "tox"), "-e", "py3", "--",
                     "-n", "0", "-k", "no_test_has_this_name", "-p", "no:cacheprovider")
    assert result.returncode != 0, result.stdout
    assert "no tests ran" in result.stdout or "deselected" in result.stdout, result.stdout
    assert "exit 5" in result.stdout, result.stdout
