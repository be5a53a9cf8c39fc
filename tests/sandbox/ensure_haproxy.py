"""Make sure Debian's haproxy is installed, installing it where this machine allows.

Run by tox before the end-to-end tests and the demo. As root with apt-get it
installs the package; otherwise it says what to run and exits 1.
"""

import os
import shutil
import subprocess
import sys


def main():
    if shutil.which("haproxy") or os.path.exists("/usr/sbin/haproxy"):
        return 0
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run([apt, "update", "-qq"], check=True, env=env)
        subprocess.run([apt, "install", "-y", "-qq", "haproxy"], check=True, env=env)
        return 0
    if apt and shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        subprocess.run(["sudo", "-n", apt, "install", "-y", "-qq", "haproxy"], check=True)
        return 0
    sys.stderr.write(
        "HAProxy is not installed and this user cannot install it: run `sudo apt-get install haproxy` "
        "(or your system's equivalent, HAProxy 2.x with Lua), then try again.\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
