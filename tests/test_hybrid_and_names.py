"""Two rules where zdd must agree with marathon-lb: when a hybrid split is reached, and how a host is named."""

import socket

import zdd
from tests.helpers import run, settle, writes, zdd_labels


def test_a_hybrid_split_ends_at_the_new_apps_target_when_the_old_app_was_rescaled(world, app_file):
    # blue was deployed with 4 instances and scaled to 6 by hand afterwards: its own target label still says 4
    world.seed_app("1-nginx-marathon1.5.json", id="/nginx-blue", instances=6,
                   labels=zdd_labels("blue", 10000, 4, "2025-06-01T10:00:00"))
    code, _, err = run(world, app_file(), "--new-instances", "2", "--stall-timeout", "120")
    assert code == zdd.ExitCode.OK, err
    # green's target is blue's 6 instances: marathon-lb drains blue down to 6 - 2 = 4
    assert writes(world) == [("create", "/nginx-green", 1), ("kill", 1), ("scale", "/nginx-green", 2), ("kill", 1)]
    assert settle(world) == {"/nginx-blue": (4, 4), "/nginx-green": (2, 2)}


def _dual_stack(host, port, family=0, type=0, proto=0, flags=0):
    """A resolver for a name with an IPv6 address listed first, as many dual-stack hosts answer."""
    answers = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2001:db8::7", 0, 0, 0)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.7", 0))]
    return [answer for answer in answers if family in (0, answer[0])]


def test_a_host_name_is_named_by_its_ipv4_address_as_marathon_lb_does():
    assert zdd.resolve_host("agent-7.example", lookup=_dual_stack) == "192.0.2.7"
    assert zdd.resolve_host("2001:db8::9") == "2001:db8::9"  # a literal stays itself
    assert zdd.resolve_host("10.0.0.5") == "10.0.0.5"
