"""The module's shape that the code map at the top of zdd.py promises (issue: the loop's contract in code)."""

import ast
from pathlib import Path

ZDD = Path(__file__).resolve().parent.parent / "zdd.py"
LONGEST_FUNCTION = 45


def test_every_function_is_45_lines_or_fewer():
    tree = ast.parse(ZDD.read_text())
    long = [(node.name, node.lineno, node.end_lineno - node.lineno + 1) for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]
    assert long == [], "functions over 45 lines (name, line, length)"


def test_the_code_map_names_every_section_in_order():
    """Each banner's section is in the code map, in the banners' order (the map's name starts the banner's)."""
    lines = ZDD.read_text().splitlines()
    banners = [line[2:] for previous, line in zip(lines, lines[1:])
               if previous.startswith("# ----") and line.startswith("# ") and not line.startswith("# ----")]
    start = lines.index(next(line for line in lines if line.startswith("# Code map")))
    end = lines.index(next(line for line in lines[start:] if line.startswith("# Rules:")))
    mapped = [line[4:21].strip() for line in lines[start:end] if line.startswith("#   ") and line[4] != " "]
    sections = []
    for banner in banners:
        name = next((name for name in mapped if banner.lower().removeprefix("the ").startswith(
            name.lower().removeprefix("the "))), None)
        assert name is not None, f"section {banner!r} is not in the code map"
        if not sections or sections[-1] != name:
            sections.append(name)
    assert sections == mapped
