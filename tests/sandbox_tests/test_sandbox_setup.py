"""The sandbox's setup on any machine: which HAProxy it runs, how it installs one, how many marathon-lbs fit."""

import os
import stat
import sys

import pytest

from tests.sandbox import ensure_haproxy
from tests.sandbox.cluster import can_bind, usable_lb_count
from tests.sandbox.haproxy import SBIN_DIRS, HAProxyInstance, find_haproxy

REAL_HAPROXY = find_haproxy()


def executable(path, text="#!/bin/sh\nexit 0\n"):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# --- which HAProxy -------------------------------------------------------------------------------


def test_find_haproxy_takes_the_first_on_path(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    executable(second / "haproxy")
    wanted = executable(first / "haproxy")
    assert find_haproxy({"PATH": os.pathsep.join([str(first), str(second)])}) == str(wanted)


def test_find_haproxy_prefers_the_variable(tmp_path):
    on_path = executable(tmp_path / "haproxy")
    environ = {"PATH": str(tmp_path), "ZDD_SANDBOX_HAPROXY": "/opt/haproxy-3/sbin/haproxy"}
    assert find_haproxy(environ) == "/opt/haproxy-3/sbin/haproxy"
    assert find_haproxy({"PATH": str(tmp_path)}) == str(on_path)


def test_find_haproxy_off_path_looks_in_the_sbin_directories(tmp_path):
    found = find_haproxy({"PATH": str(tmp_path)})  # an empty directory: nothing on PATH
    assert found is None or os.path.dirname(found) in SBIN_DIRS


@pytest.mark.skipif(REAL_HAPROXY is None, reason="HAProxy is not installed")
def test_haproxy_instance_runs_the_haproxy_on_path(tmp_path, monkeypatch):
    """A Homebrew-like haproxy first on PATH is the one run (it was /usr/sbin/haproxy whatever PATH said)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ran = tmp_path / "ran"
    wrapper = executable(bin_dir / "haproxy", '#!/bin/sh\necho "$@" >> %s\nexec %s "$@"\n' % (ran, REAL_HAPROXY))
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]))
    monkeypatch.delenv("ZDD_SANDBOX_HAPROXY", raising=False)
    instance = HAProxyInstance(tmp_path / "lb")
    assert instance.haproxy_bin == str(wrapper)
    instance.check_config("defaults\n  mode http\n  timeout client 1s\n  timeout server 1s\n  timeout connect 1s\n"
                          "listen probe\n  bind 127.0.0.1:%d\n" % instance.stats_port)
    assert "-c" in ran.read_text().split()


def test_socket_paths_haproxy_would_refuse_go_to_a_short_directory(tmp_path):
    """HAProxy 2.6 refuses a socket path over 97 characters: a deep workdir (pytest-xdist's basetemp adds
    popen-gwN/) keeps its sockets in a short temporary directory instead."""
    padding = 99 - len(str(tmp_path / "x" / "master.sock"))
    assert padding > 0, tmp_path
    workdir = tmp_path / ("x" * (padding + 1))
    assert len(str(workdir / "master.sock")) == 99
    instance = HAProxyInstance(workdir, haproxy_bin="/bin/true")
    assert len(str(instance.master_socket)) <= 97 and len(str(instance.stats_socket)) <= 97
    short = HAProxyInstance(tmp_path / "lb", haproxy_bin="/bin/true")
    assert short.master_socket == (tmp_path / "lb").resolve() / "master.sock"


# --- installing HAProxy --------------------------------------------------------------------------


def test_install_as_root_updates_the_package_lists_first():
    assert ensure_haproxy.install_commands("/usr/bin/apt-get", is_root=True, has_sudo=False) == [
        ["/usr/bin/apt-get", "update", "-qq"], ["/usr/bin/apt-get", "install", "-y", "-qq", "haproxy"]]


def test_install_with_sudo_updates_the_package_lists_first():
    commands = ensure_haproxy.install_commands("/usr/bin/apt-get", is_root=False, has_sudo=True)
    assert [command[:2] for command in commands] == [["sudo", "-n"], ["sudo", "-n"]]
    assert [command[-3:] for command in commands] == [["/usr/bin/apt-get", "update", "-qq"],
                                                     ["-y", "-qq", "haproxy"]]


@pytest.mark.parametrize("apt, is_root, has_sudo", [(None, True, False), ("/usr/bin/apt-get", False, False)])
def test_no_install_without_apt_or_rights(apt, is_root, has_sudo):
    assert ensure_haproxy.install_commands(apt, is_root, has_sudo) is None


# --- how many marathon-lbs -----------------------------------------------------------------------


def test_lbs_fall_back_to_one_without_127_0_0_2():
    """macOS has only 127.0.0.1: one marathon-lb, and a note that says why and how to add the address."""
    count, note = usable_lb_count(2, bindable=lambda ip: ip == "127.0.0.1")
    assert count == 1
    assert "127.0.0.2" in note and "1 marathon-lb" in note and "ifconfig lo0 alias" in note


def test_lbs_stop_at_the_first_address_missing():
    count, note = usable_lb_count(4, bindable=lambda ip: ip in ("127.0.0.2", "127.0.0.3"))
    assert count == 3 and "127.0.0.4" in note


def test_lbs_as_asked_when_every_address_binds():
    assert usable_lb_count(3, bindable=lambda ip: True) == (3, None)
    assert usable_lb_count(1, bindable=lambda ip: False) == (1, None)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux routes all of 127/8 to lo")
def test_can_bind_tries_the_address():
    assert can_bind("127.0.0.2")
    assert not can_bind("192.0.2.1")  # TEST-NET-1: never an address of this host
