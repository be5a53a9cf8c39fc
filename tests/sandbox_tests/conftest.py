"""The sandbox's own tests (the simulator, the fake marathon-lb, HAProxy, tasks, load, the sandbox commands).

The end-to-end ones here (marked ``e2e``) use the ``sandbox`` fixture of tests/e2e/conftest.py: imported, not
copied, so that every test with real processes checks that none is left behind the same way.
"""

from tests.e2e.conftest import sandbox  # noqa: F401 (a fixture, found by pytest in this module)
