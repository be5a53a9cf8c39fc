"""run-tox.py, the README's entry point: what it says when this Python cannot make a virtual environment."""

import importlib.util
import subprocess
import sys

import pytest

from tests.sandbox.cluster import REPO_ROOT

SCRIPT = REPO_ROOT / "run-tox.py"


def load_script():
    spec = importlib.util.spec_from_file_location("run_tox", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_venv_support_and_without_root_it_says_what_to_install():
    run_tox = load_script()
    with pytest.raises(run_tox.SetupError) as raised:
        run_tox.install_venv_support("No module named 'ensurepip'", "/usr/bin/apt-get", is_root=False)
    message = str(raised.value)
    assert "sudo apt-get install python3-venv" in message and "then this command again" in message
    assert "No module named 'ensurepip'" in message and sys.executable in message


def test_without_apt_it_says_what_is_missing():
    run_tox = load_script()
    with pytest.raises(run_tox.SetupError) as raised:
        run_tox.install_venv_support("No module named 'ensurepip'", None, is_root=True)
    assert "install the venv module of this Python" in str(raised.value)


def test_a_python_without_ensurepip_is_detected(tmp_path):
    """Debian's python3 without python3-venv has no ensurepip: stand one in that fails to import, as there."""
    (tmp_path / "ensurepip.py").write_text("raise ImportError(\"No module named 'ensurepip'\")\n")
    code = ("import importlib.util; spec = importlib.util.spec_from_file_location('run_tox', %r); "
            "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
            "print(module.venv_support_missing())" % str(SCRIPT))
    found = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path)}, capture_output=True,
                           text=True, timeout=60)
    assert found.stdout.strip() == "No module named 'ensurepip'", found.stderr
    assert load_script().venv_support_missing() is None  # this Python can make venvs


CI_RUN = REPO_ROOT / ".ci" / "run"


def test_ci_run_reads_haproxys_whole_version_answer(tmp_path):
    """.ci/run prints HAProxy's first line under pipefail; haproxy writes its lines one write at a time.

    The stand-in haproxy waits between its lines, so a reader that stops after the first (head) is gone when the
    second comes: SIGPIPE, and CI ended with 141 before any test ran.
    """
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    (checkout / ".ci" / "run").write_text(CI_RUN.read_text())
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "haproxy").write_text("#!/bin/bash\necho 'HAProxy version 9.9'\nsleep 0.3\necho 'Known bugs: none'\n"
                                   "echo 'Running on: here'\n")
    (stubs / "python3").write_text('#!/bin/bash\necho "python3 $* in $PWD, ZDD_REQUIRE_E2E=$ZDD_REQUIRE_E2E"\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    ran = subprocess.run(["bash", str(checkout / ".ci" / "run")], capture_output=True, text=True, timeout=60,
                         env={"PATH": "%s:/usr/bin:/bin" % stubs})
    assert ran.returncode == 0, (ran.returncode, ran.stdout, ran.stderr)
    assert ran.stdout.splitlines() == ["HAProxy version 9.9",
                                       "python3 run-tox.py in %s, ZDD_REQUIRE_E2E=1" % checkout]
