"""Make sure an HAProxy is installed, installing Debian's package where this machine allows.

Run by tox before the end-to-end tests, the demo and the sandbox. The HAProxy
it looks for is the one the sandbox runs (``haproxy.find_haproxy``: the first
on PATH). Missing, it is installed with apt-get, as root or through
password-less sudo, after an ``apt-get update`` (a fresh image has no package
lists); otherwise it says what to run and exits 1.
"""

import os
import shutil
import subprocess
import sys

from tests.sandbox.haproxy import find_haproxy

PACKAGE = "haproxy"


def install_commands(apt, is_root, has_sudo):
    """The commands that install HAProxy here, or None when this user cannot."""
    if apt is None or not (is_root or has_sudo):
        return None
    prefix = [] if is_root else ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"]
    return [prefix + [apt, "update", "-qq"], prefix + [apt, "install", "-y", "-qq", PACKAGE]]


def _passwordless_sudo():
    if shutil.which("sudo") is None:
        return False
    return subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0


def main():
    found = find_haproxy()
    if found:
        print("HAProxy: %s" % found)
        return 0
    is_root = os.geteuid() == 0
    commands = install_commands(shutil.which("apt-get"), is_root, not is_root and _passwordless_sudo())
    if commands is None:
        sys.stderr.write(
            "HAProxy is not installed and this user cannot install it: run `sudo apt-get update && sudo apt-get "
            "install haproxy` (macOS: `brew install haproxy`; HAProxy 2.x with Lua), then try again.\n"
        )
        return 1
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in commands:
        print("$ " + " ".join(command))
        subprocess.run(command, check=True, env=env)
    print("HAProxy: %s" % find_haproxy())
    return 0


if __name__ == "__main__":
    sys.exit(main())
