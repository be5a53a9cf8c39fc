"""The README's getpids Lua for marathon-lb operators is the very file the sandbox's HAProxy runs."""

import textwrap
from pathlib import Path

from tests.sandbox.haproxy import GETPIDS_LUA

README = Path(__file__).resolve().parents[1] / "README.rst"


def code_block(text, language):
    """The first ``.. code-block:: <language>`` of an reST text, dedented."""
    lines = text.splitlines()
    start = lines.index(".. code-block:: %s" % language) + 1
    block = []
    for line in lines[start:]:
        if line and not line.startswith(" "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip("\n") + "\n"


def test_the_readme_lua_is_the_sandbox_getpids():
    assert code_block(README.read_text(), "lua") == GETPIDS_LUA
