"""The Marathon simulator's parts, one concern a module; tests/sandbox/marathon.py puts them together."""
