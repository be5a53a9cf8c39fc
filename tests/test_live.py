"""The live view: on a terminal, one status block redrawn in place; elsewhere the log stays line by line.

In process, stderr is a stream that says it is a terminal; through a pseudo-
terminal, the real ``zdd`` command runs against a simulator on the real clock.
Either way the bytes written are replayed by a small terminal model (text,
CR, LF, cursor up, erase below) to see what the screen shows at the end.
"""

import errno
import fcntl
import io
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

import zdd
from tests.helpers import QUIET as BASE_QUIET
from tests.helpers import SEQUENCE_3, ActingClock, make_hook, run, seed_blue, writes, zdd_labels
from tests.sandbox.cluster import zdd_command
from tests.sandbox.world import load_fixture

ROOT = Path(__file__).resolve().parent.parent
LOG_FORMAT = ("--log-format", "%(message)s")
QUIET = (*BASE_QUIET, *LOG_FORMAT)
REDRAW = re.compile(r"\r\x1b\[(\d+)A\x1b\[J")


class Terminal(io.StringIO):
    """A stream that says it is a terminal (80 columns: it has no file descriptor)."""

    def isatty(self):
        return True


def screen(raw, columns=80):
    """The lines a terminal shows after ``raw``, scrollback included: printable text wraps at ``columns``,
    CR and LF move the cursor, ``ESC[nA`` moves it up, ``ESC[J`` erases from it to the end."""
    lines, row, col = [""], 0, 0
    for match in re.finditer(r"\x1b\[(\d*)([A-Za-z])|\r|\n|[^\x1b\r\n]", raw):
        token = match.group(0)
        if match.group(2) == "A":
            row = max(0, row - int(match.group(1) or 1))
        elif match.group(2) == "J":
            del lines[row + 1:]
            lines[row] = lines[row][:col]
        elif match.group(2):
            continue
        elif token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
        else:
            if col >= columns:
                row, col = row + 1, 0
            while len(lines) <= row:
                lines.append("")
            line = lines[row].ljust(col)
            lines[row] = line[:col] + token + line[col + 1:]
            col += 1
        while len(lines) <= row:
            lines.append("")
    while lines and lines[-1] == "":
        lines.pop()
    return lines


@pytest.fixture(autouse=True)
def a_terminal_that_moves_the_cursor(monkeypatch):
    """TERM as on a desktop, wherever the tests run (zdd draws no block on TERM=dumb)."""
    monkeypatch.setenv("TERM", "xterm")


# --- in process -----------------------------------------------------------------------------------


def test_on_a_terminal_the_polls_are_one_block_and_the_actions_stay(world, app_path):
    seed_blue(world, 3)
    code, _, raw = run(world, app_path, *LOG_FORMAT, stderr=Terminal())
    assert code == 0
    assert writes(world) == SEQUENCE_3, "the live view changes no decision"
    shown = screen(raw)
    text = "\n".join(shown)
    for permanent in ("Created /nginx-green with 1 instance(s)", "Scaling /nginx-green up to 2 instance(s)",
                      "Scaling /nginx-green up to 3 instance(s)", "About to delete the old app /nginx-blue",
                      "Deleted /nginx-blue: the deployment is complete"):
        assert text.count(permanent) == 1, permanent
    assert text.count("Killing 1 drained old task(s) of /nginx-blue:") == 2
    assert text.index("up to 2") < text.index("up to 3") < text.index("Deleted")
    assert not any(line.startswith("step ") for line in shown), "no poll line is left once zdd ends"
    assert raw.count("step 1: green") >= 1 and REDRAW.search(raw)
    assert all(len(line) <= 80 for line in shown)


def test_the_block_shows_the_step_the_schedule_the_wait_and_how_long(world, app_path):
    seed_blue(world, 3)
    world.lb.extra_pids = [4003]  # reloading for a while: zdd waits in step 1
    stderr = Terminal()

    start = world.clock.monotonic()

    def release_later():  # marathon-lb stops reloading 20 s in
        if world.clock.monotonic() - start >= 20:
            world.lb.extra_pids = []

    clock = ActingClock(world.clock, release_later)
    assert run(world, app_path, *LOG_FORMAT, "--reload-check", "getpids", stderr=stderr, clock=clock)[0] == 0
    raw = stderr.getvalue()
    blocks = [screen(raw[:match.start()]) for match in REDRAW.finditer(raw)]
    waiting = [block for block in blocks if any("is reloading" in line for line in block)]
    assert waiting, "a block was drawn while marathon-lb reloaded"
    last = waiting[-1]
    head = next(index for index, line in enumerate(last) if line.startswith("step 1 of 3, "))
    assert re.fullmatch(r"step 1 of 3, 1[5-9] s so far: waiting: marathon-lb http://127\.0\.0\.1:\d+ is "
                        r"reloading \(3 HAProxy PIDs\)", last[head] + last[head + 1])
    block = "\n".join(last[head:])
    assert "  new green: 1 healthy of 1, schedule [1] -> 2 -> 3" in block
    assert "  old blue: 3 healthy of 3, schedule [3] -> 2 -> 1 -> 0" in block
    assert f"  marathon-lb {world.lb.url}: 3 PIDs, UP 3, MAINT 1, drained 1" in block
    assert "step 1: green 1/1 up, blue 3 draining " in block, "the poll line is the block's last line"


def test_a_prompt_clears_the_block_first(world, app_path):
    seed_blue(world, 3)
    stderr = Terminal()

    def answer(question):  # as the terminal prompt does: the question and the echoed answer on stderr
        stderr.write(f"{question} [Y/n] y\n")
        return True

    code, _, raw = run(world, app_path, *LOG_FORMAT, ask=answer, stderr=stderr)
    assert code == 0
    shown = screen(raw)
    assert [line for line in shown if "[Y/n]" in line] == ["Continue with deployment? [Y/n] y"] + [
        "Continue? [Y/n] y"] * 3
    assert not any(line.startswith("step ") for line in shown)
    assert "\n".join(shown).count("Scaling /nginx-green up to") == 2


def test_a_rollback_redraws_the_block_too(world, app_path, tmp_path):
    seed_blue(world, 3)
    hook, _ = make_hook(tmp_path, 3)  # refuses the first kill: the rollback hands over, drains and deletes green
    code, _, raw = run(world, app_path, *LOG_FORMAT, "--pre-kill-hook", hook, "--on-failure", "rollback",
                       stderr=Terminal())
    assert code == zdd.ExitCode.ROLLED_BACK
    rolling_back = raw.index("Rolling back: restoring /nginx-blue")
    blocks = ["\n".join(screen(raw[:match.start()])) for match in REDRAW.finditer(raw) if match.start() > rolling_back]
    drawn = [block[block.index("rolling back, "):] for block in blocks if "\nrolling back, " in block]
    assert any(block.startswith("rolling back, 0 s so far: waiting: marathon-lb http://127.0.0.1:")
               and "\n  restored blue 3/3\n  failed green 1/1\n  marathon-lb " in block
               and "\nrollback: blue 3/3 up, waiting: marathon-lb " in block for block in drawn), \
        "the rollback's polls redraw the block, their line in it"
    assert any(block.startswith("rolling back, 2 s so far: deleting the failed app") for block in drawn)
    shown = screen(raw)
    assert not any(line.startswith(("rolling back, ", "rollback: ")) for line in shown), "none of it stays"


@pytest.mark.parametrize("stderr, args, term", [(io.StringIO(), (), "xterm"),
                                                (Terminal(), ("--output", "json"), "xterm"),
                                                (Terminal(), (), "dumb")],
                         ids=["not a terminal", "json", "TERM=dumb"])
def test_no_live_view_off_a_terminal_or_with_json(world, app_path, monkeypatch, stderr, args, term):
    monkeypatch.setenv("TERM", term)
    seed_blue(world, 3)
    code, _, raw = run(world, app_path, *LOG_FORMAT, *args, stderr=stderr)
    assert code == 0
    assert "\x1b" not in raw
    assert len(re.findall(r"^step \d+: ", raw, re.M)) >= 3, "one line per poll, as before"


# --- through a pseudo-terminal --------------------------------------------------------------------


def quick_app():
    """The nginx app, its tasks running 0.1 s after launch, no health checks (so no waiting on them)."""
    app = load_fixture("1-nginx-marathon1.5.json")
    del app["healthChecks"]
    app["labels"]["SIM_START_DELAY_S"] = "0.1"
    return app


def seed_blue_and_app(sim, tmp_path):
    """Blue running 3 quick instances, and the app JSON for green; returns the JSON's path."""
    sim.add_app(dict(quick_app(), id="/nginx-blue", instances=3,
                     labels=dict(quick_app()["labels"], **zdd_labels("blue", 10000, 3, "2025-06-01T10:00:00"))))
    path = tmp_path / "app.json"
    path.write_text(json.dumps(quick_app()))
    return path


def run_on_pty(argv, columns=100, rows=40, until=None, answer=None, timeout_s=60):
    """Run ``argv`` with stdin, stdout and stderr on a new pseudo-terminal; returns (exit code, bytes shown).

    ``until(text)`` (optional): once it holds for the output so far, the process gets SIGINT.
    ``answer`` (optional): typed, with Enter, after each ``[Y/n]`` prompt.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = dict(os.environ, TERM="xterm", PYTHONPATH=str(ROOT))
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave,
                               start_new_session=True)
    os.close(slave)
    chunks, interrupted, answered, end = [], False, 0, time.monotonic() + timeout_s
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError as exc:  # EIO: the last holder of the terminal closed it
                    if exc.errno != errno.EIO:
                        raise
                    break
                if not data:
                    break
                chunks.append(data)
            shown = b"".join(chunks).decode(errors="replace")
            if answer is not None and shown.count("[Y/n] ") > answered:
                os.write(master, answer.encode() + b"\n")
                answered += 1
            if until and not interrupted and until(shown):
                process.send_signal(signal.SIGINT)
                interrupted = True
            if process.poll() is not None and not ready:
                break
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, b"".join(chunks).decode()


def test_a_deployment_on_a_pseudo_terminal(real_world, tmp_path):
    sim, lb = real_world
    path = seed_blue_and_app(sim, tmp_path)
    argv = [*zdd_command(), "-m", sim.url, "-l", lb.url, "-j", str(path), "-f", *QUIET, "-s", "0.1"]
    code, raw = run_on_pty(argv)
    assert code == 0, raw
    assert [a["id"] for a in sim.api_apps()] == ["/nginx-green"]
    redraws = REDRAW.findall(raw)
    assert len(redraws) >= 3, raw
    shown = screen(raw.replace("\r\n", "\n"), columns=100)
    text = "\n".join(shown)
    for permanent in ("Created /nginx-green with 1 instance(s)", "Scaling /nginx-green up to 2 instance(s)",
                      "Scaling /nginx-green up to 3 instance(s)", "Deleted /nginx-blue: the deployment is complete"):
        assert text.count(permanent) == 1, text
    assert text.count("Killing 1 drained old task(s) of /nginx-blue:") == 2
    assert not any(line.startswith("step ") for line in shown), text
    assert "step 1 of 3, " in raw and "  new green: " in raw and "schedule " in raw


def test_status_watch_on_a_pseudo_terminal_redraws_until_ctrl_c(real_world, tmp_path):
    sim, lb = real_world
    path = seed_blue_and_app(sim, tmp_path)
    argv = [*zdd_command(), "-m", sim.url, "-l", lb.url, "-j", str(path), *QUIET, "--status", "--watch", "-s", "0.1"]
    code, raw = run_on_pty(argv, until=lambda text: len(REDRAW.findall(text)) >= 3)
    assert code == zdd.ExitCode.INTERRUPTED, raw
    assert raw.count("verdict: at rest: /nginx-blue (blue) alone serves the group") >= 4
    shown = screen(raw.replace("\r\n", "\n"), columns=100)
    assert sum(1 for line in shown if line.startswith("verdict: ")) == 1, "one view, redrawn in place"
    assert "stopped by SIGINT" in shown[-1]
    assert lb.pid_polls == 1
    assert sim.writes() == []


def test_prompts_on_a_pseudo_terminal_are_never_drawn_over(real_world, tmp_path):
    sim, lb = real_world
    path = seed_blue_and_app(sim, tmp_path)
    argv = [*zdd_command(), "-m", sim.url, "-l", lb.url, "-j", str(path), *QUIET, "-s", "0.1"]
    code, raw = run_on_pty(argv, answer="y")
    assert code == 0, raw
    shown = screen(raw.replace("\r\n", "\n"), columns=100)
    prompts = [line for line in shown if "[Y/n]" in line]
    assert prompts == ["Continue with deployment? [Y/n] y"] + ["Continue? [Y/n] y"] * 3, shown
    assert not any(line.startswith("step ") for line in shown)
    assert len(REDRAW.findall(raw)) >= 3
    assert [a["id"] for a in sim.api_apps()] == ["/nginx-green"]


def test_a_view_taller_than_the_terminal_is_cut_to_fit(real_world, tmp_path):
    """Cursor-up stops at the top line: a block taller than the screen could not be redrawn in place."""
    sim, lb = real_world
    path = seed_blue_and_app(sim, tmp_path)
    argv = [*zdd_command(), "-m", sim.url, "-l", ",".join([lb.url] * 4), "-j", str(path), *QUIET, "--status",
            "--watch", "-s", "0.1"]
    code, raw = run_on_pty(argv, rows=12, until=lambda text: len(REDRAW.findall(text)) >= 3)
    assert code == zdd.ExitCode.INTERRUPTED, raw
    assert {int(rows) for rows in REDRAW.findall(raw)} == {11}
    assert "more lines: a taller terminal shows them)" in raw
    shown = screen(raw.replace("\r\n", "\n"), columns=100)
    assert sum(1 for line in shown if line.startswith("group nginx")) == 1, "one view, redrawn in place"
