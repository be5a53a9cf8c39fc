"""Shared fixtures: ``world`` is a fake clock, a Marathon simulator and a fake marathon-lb."""

import pytest

from tests.sandbox.world import World


@pytest.fixture
def world():
    """A started World (Marathon 1.5 shapes); stopped at teardown, even when the test fails."""
    created = World()
    try:
        yield created
    finally:
        created.close()


@pytest.fixture
def world14():
    """A started World answering in Marathon 1.4 shapes."""
    created = World(marathon_version="1.4")
    try:
        yield created
    finally:
        created.close()
