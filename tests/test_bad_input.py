"""Bad inputs through zdd.main: one line on stderr, the documented exit code, nothing written to Marathon.

Every case seeds a running blue app of the group first (unless the case is
about the group itself), so that a missing check would go on to write: a
POST of the green app, or of the first blue one.
"""

import http.server
import io
import json
import os
import sys
import threading

import pytest

import zdd
from tests.helpers import closed_port_url, seed_blue, seed_green
from tests.sandbox.world import load_fixture

ALWAYS_YES = object()  # ask=lambda q: True
NO_ASK = object()  # main() without ask: it must read a terminal


def base_app():
    return load_fixture("1-nginx-marathon1.5.json")


class Case:
    """What one bad-input case needs: a temp dir, the world, files it writes, servers it starts."""

    def __init__(self, world, tmp_path):
        self.world = world
        self.tmp = tmp_path
        self.servers = []

    def html_url(self):
        """A tiny server on 127.0.0.1:0 answering every request with an HTML page (not Marathon)."""
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HtmlHandler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    def close(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()

    def write(self, name, text, mode=None):
        path = self.tmp / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        if mode is not None:
            os.chmod(path, mode)
        return str(path)

    def app_file(self, change=None, text=None):
        if text is None:
            app = base_app()
            if change:
                change(app)
            text = json.dumps(app)
        return self.write("app.json", text)

    def argv(self, *extra, marathon=None, lb=None, app=None):
        """-m, -l (the world's unless given), -j (a valid app unless given), syslog off, then ``extra``."""
        return ["-m", marathon or self.world.sim.url, "-l", lb or self.world.lb.url,
                "-j", app or self.app_file(), "--syslog-socket", "/dev/null"] + list(extra)


def without(*path):
    def change(app):
        target = app
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def label(key, value):
    def change(app):
        app["labels"][key] = value
    return change


def setting(key, value):
    def change(app):
        app[key] = value
    return change


def service_port(value):
    def change(app):
        app["container"]["portMappings"][0]["servicePort"] = value
    return change


def two_service_ports(app):
    app["container"]["portMappings"].append({"hostPort": 0, "containerPort": 8081, "servicePort": 10002})


def no_service_port(app):
    del app["container"]["portMappings"]
    app.pop("portDefinitions", None)


# ---------------------------------------------------------------------------
# Exit 4: the app JSON is unusable
# ---------------------------------------------------------------------------

BAD_APPS = [
    pytest.param(lambda c: c.argv(app=str(c.tmp / "missing.json")), id="app-file-missing"),
    pytest.param(lambda c: c.argv(app=str(c.tmp)), id="app-file-is-a-directory"),
    pytest.param(lambda c: c.argv(app=c.write("app.json", b'{"id": "\xff\xfe"}')), id="app-file-not-utf8"),
    pytest.param(lambda c: c.argv(app=c.app_file(text='{"id": "nginx", "labels": {')), id="malformed-json"),
    pytest.param(lambda c: c.argv(app=c.app_file(text="")), id="empty-file"),
    pytest.param(lambda c: c.argv(app=c.app_file(text='[{"id": "nginx"}]')), id="json-list"),
    pytest.param(lambda c: c.argv(app=c.app_file(text='"nginx"')), id="json-string"),
    pytest.param(lambda c: c.argv(app=c.app_file(text="null")), id="json-null"),
    pytest.param(lambda c: c.argv(app=c.app_file(without("id"))), id="missing-id"),
    pytest.param(lambda c: c.argv(app=c.app_file(setting("id", "/"))), id="id-only-slash"),
    pytest.param(lambda c: c.argv(app=c.app_file(setting("id", 7))), id="id-not-a-string"),
    pytest.param(lambda c: c.argv(app=c.app_file(without("labels"))), id="missing-labels"),
    pytest.param(lambda c: c.argv(app=c.app_file(setting("labels", ["a"]))), id="labels-not-an-object"),
    pytest.param(lambda c: c.argv(app=c.app_file(without("labels", "HAPROXY_DEPLOYMENT_GROUP"))),
                 id="missing-group"),
    pytest.param(lambda c: c.argv(app=c.app_file(label("HAPROXY_DEPLOYMENT_GROUP", ""))), id="empty-group"),
    pytest.param(lambda c: c.argv(app=c.app_file(without("labels", "HAPROXY_DEPLOYMENT_ALT_PORT"))),
                 id="missing-alt-port"),
    pytest.param(lambda c: c.argv(app=c.app_file(label("HAPROXY_DEPLOYMENT_ALT_PORT", "ten"))),
                 id="alt-port-not-numeric"),
    pytest.param(lambda c: c.argv(app=c.app_file(label("HAPROXY_DEPLOYMENT_ALT_PORT", "0"))), id="alt-port-0"),
    pytest.param(lambda c: c.argv(app=c.app_file(label("HAPROXY_DEPLOYMENT_ALT_PORT", "70000"))),
                 id="alt-port-70000"),
    pytest.param(lambda c: c.argv(app=c.app_file(label("HAPROXY_DEPLOYMENT_ALT_PORT", "10000"))),
                 id="alt-port-equals-service-port"),
    pytest.param(lambda c: c.argv(app=c.app_file(service_port(0))), id="service-port-0"),
    pytest.param(lambda c: c.argv(app=c.app_file(service_port(70000))), id="service-port-70000"),
    pytest.param(lambda c: c.argv(app=c.app_file(two_service_ports)), id="several-service-ports"),
    pytest.param(lambda c: c.argv(app=c.app_file(no_service_port)), id="no-service-port"),
    pytest.param(lambda c: c.argv(app=c.app_file(setting("instances", -1))), id="negative-instances"),
    pytest.param(lambda c: c.argv(app=c.app_file(setting("instances", "3"))), id="instances-a-string"),
]

# ---------------------------------------------------------------------------
# Exit 3: invalid arguments
# ---------------------------------------------------------------------------

HOOK_SCRIPT = "#!/bin/sh\nexit 0\n"
DCOS_NO_KEY = json.dumps({"uid": "zdd", "login_endpoint": "https://leader.mesos/acs/api/v1/auth/login"})
DCOS_BAD_LOGIN_URL = json.dumps({"uid": "zdd", "private_key": "key", "login_endpoint": "https://[::1/acs"})


def _host_port(url):
    return url.split("://", 1)[1]


def _complete_cur_one_app(c):
    return c.argv("--complete-cur")


def _in_progress(c):
    seed_green(c.world)
    return c.argv()


def _format(variables_text, app_text):
    def build(c):
        variables = c.write("vars.json", variables_text)
        return c.argv("--format-json", variables, app=c.app_file(text=app_text))
    return build


APP_TEMPLATE = json.dumps(base_app()).replace('"instances": 5', '"instances": {count}')
APP_ID_TEMPLATE = '{"id": "%s", "labels": {"HAPROXY_DEPLOYMENT_GROUP": "nginx"}}'

INVALID_ARGS = [
    pytest.param(lambda c: c.argv(marathon=_host_port(c.world.sim.url)), id="marathon-url-without-scheme"),
    pytest.param(lambda c: c.argv(marathon="ftp://" + _host_port(c.world.sim.url)), id="marathon-url-ftp"),
    pytest.param(lambda c: c.argv(marathon="http://"), id="marathon-url-without-host"),
    pytest.param(lambda c: c.argv(marathon="http://127.0.0.1:port"), id="marathon-url-bad-port"),
    pytest.param(lambda c: c.argv(lb=_host_port(c.world.lb.url)), id="lb-url-without-scheme"),
    pytest.param(lambda c: c.argv(lb="ftp://" + _host_port(c.world.lb.url)), id="lb-url-ftp"),
    pytest.param(lambda c: c.argv(lb=c.world.lb.url + ",lb:9090"), id="lb-second-url-without-scheme"),
    pytest.param(lambda c: c.argv(lb=","), id="lb-url-empty-list"),
    pytest.param(lambda c: c.argv(marathon="http://[::1"), id="marathon-url-unclosed-ipv6-bracket"),
    pytest.param(lambda c: c.argv(marathon="http://alice:secret@[::1"), id="marathon-url-with-password-unclosed"),
    pytest.param(lambda c: c.argv(marathon="http://[marathon]:8080"), id="marathon-url-bracketed-name"),
    pytest.param(lambda c: c.argv(lb="http://[::1"), id="lb-url-unclosed-ipv6-bracket"),
    pytest.param(lambda c: c.argv(lb=c.world.lb.url + ",http://[::1:9090"), id="lb-second-url-unclosed-bracket"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", DCOS_BAD_LOGIN_URL), id="dcos-login-url-unclosed"),
    pytest.param(lambda c: c.argv("--auth-credentials", "alice"), id="credentials-without-colon"),
    pytest.param(lambda c: c.argv("--auth-credentials", ":secret"), id="credentials-without-user"),
    pytest.param(lambda c: c.argv("--marathon-auth-credential-file", str(c.tmp / "missing")),
                 id="credential-file-missing"),
    pytest.param(lambda c: c.argv("--marathon-auth-credential-file", c.write("cred", "alice\n")),
                 id="credential-file-without-colon"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", "not json"), id="dcos-credentials-not-json"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", DCOS_NO_KEY), id="dcos-credentials-no-private-key"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", "[1, 2]"), id="dcos-credentials-not-an-object"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", str(c.tmp / "missing-sa.json")),
                 id="dcos-credentials-file-missing"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", c.write("sa.json", "uid: zdd\n")),
                 id="dcos-credentials-file-not-json"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", c.write("sa.json", DCOS_NO_KEY)),
                 id="dcos-credentials-file-no-private-key"),
    pytest.param(lambda c: c.argv("--dcos-auth-credentials", str(c.tmp)), id="dcos-credentials-file-is-a-directory"),
    pytest.param(lambda c: c.argv("--complete-cur", "--complete-prev"), id="complete-cur-and-prev"),
    pytest.param(_complete_cur_one_app, id="complete-cur-with-one-app"),
    pytest.param(lambda c: c.argv("--complete-prev"), id="complete-prev-with-one-app"),
    pytest.param(lambda c: c.argv("--pre-kill-hook", str(c.tmp / "no-such-hook")), id="hook-missing"),
    pytest.param(lambda c: c.argv("--pre-kill-hook", c.write("hook.sh", HOOK_SCRIPT, mode=0o644)),
                 id="hook-not-executable"),
    pytest.param(lambda c: c.argv("--pre-kill-hook", str(c.tmp)), id="hook-is-a-directory"),
    pytest.param(lambda c: c.argv("--marathon-ca-cert", str(c.tmp / "no-ca.pem")), id="ca-cert-missing"),
    pytest.param(_format('{"other": 1}', APP_TEMPLATE), id="format-json-missing-variable"),
    pytest.param(_format('{"x": "nginx"}', APP_ID_TEMPLATE % "{x.__class__}"), id="format-json-attribute"),
    pytest.param(_format('{"x": "nginx"}', APP_ID_TEMPLATE % "{x[0]}"), id="format-json-index"),
    pytest.param(_format('["count", 3]', APP_TEMPLATE), id="format-json-not-an-object"),
    pytest.param(_format("{count: 3}", APP_TEMPLATE), id="format-json-not-json"),
    pytest.param(lambda c: c.argv("--format-json", str(c.tmp / "missing-vars.json")),
                 id="format-json-file-missing"),
    pytest.param(_in_progress, id="deployment-in-progress-without-resume"),
]

# ---------------------------------------------------------------------------
# Exit 2: usage errors
# ---------------------------------------------------------------------------


def _drop(flag, argv):
    index = argv.index(flag)
    return argv[:index] + argv[index + 2:]


USAGE = [
    pytest.param(lambda c: c.argv("--log-level", "LOUD"), id="unknown-log-level"),
    pytest.param(lambda c: c.argv("--step-delay", "-1"), id="negative-step-delay"),
    pytest.param(lambda c: c.argv("--initial-instances", "-1"), id="negative-initial-instances"),
    pytest.param(lambda c: c.argv("--initial-instances", "1.5"), id="fractional-initial-instances"),
    pytest.param(lambda c: c.argv("--max-wait", "soon"), id="non-numeric-max-wait"),
    pytest.param(lambda c: c.argv("--max-wait", "nan"), id="nan-max-wait"),
    pytest.param(lambda c: c.argv("--new-instances", "-2"), id="negative-new-instances"),
    pytest.param(lambda c: _drop("-j", c.argv()), id="missing-json"),
    pytest.param(lambda c: _drop("-m", c.argv()), id="missing-marathon"),
    pytest.param(lambda c: _drop("-l", c.argv()), id="missing-marathon-lb"),
    pytest.param(lambda c: c.argv("--no-such-flag"), id="unknown-flag"),
]

# ---------------------------------------------------------------------------
# Exit 6: Marathon fails; exit 5: marathon-lb fails
# ---------------------------------------------------------------------------


class HtmlHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body><h1>Welcome to nginx!</h1></body></html>\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, *args):
        pass


def _lb_down(c):
    c.world.lb.down()
    return c.argv()


MARATHON_FAILED = [
    pytest.param(lambda c: c.argv(marathon="http://marathon.zdd-test.invalid:8080"), id="marathon-does-not-resolve"),
    pytest.param(lambda c: c.argv(marathon=c.html_url()), id="marathon-answers-html"),
    pytest.param(lambda c: c.argv(marathon=closed_port_url()), id="marathon-refuses-connections"),
]

LB_FAILED = [
    pytest.param(lambda c: c.argv(lb="http://marathon-lb.zdd-test.invalid:9090"), id="lb-does-not-resolve"),
    pytest.param(_lb_down, id="lb-refuses-connections"),
    pytest.param(lambda c: c.argv(lb=c.world.lb.url + "," + closed_port_url()), id="second-lb-refuses"),
    # A dry run reads what the real run reads before its first write, and fails the same way.
    pytest.param(lambda c: c.argv("--dry-run", lb="http://marathon-lb.zdd-test.invalid:9090"),
                 id="dry-run-lb-does-not-resolve"),
    pytest.param(lambda c: _lb_down(c) + ["--dry-run"], id="dry-run-lb-refuses-connections"),
    pytest.param(lambda c: c.argv("--dry-run", lb=c.world.lb.url + "," + closed_port_url()),
                 id="dry-run-second-lb-refuses"),
]

CASES = (
    [pytest.param(*p.values, 4, id=p.id) for p in BAD_APPS]
    + [pytest.param(*p.values, 3, id=p.id) for p in INVALID_ARGS]
    + [pytest.param(*p.values, 2, id=p.id) for p in USAGE]
    + [pytest.param(*p.values, 6, id=p.id) for p in MARATHON_FAILED]
    + [pytest.param(*p.values, 5, id=p.id) for p in LB_FAILED]
)


def run_main(world, argv, ask=ALWAYS_YES):
    stdout, stderr = io.StringIO(), io.StringIO()
    kwargs = {} if ask is NO_ASK else {"ask": lambda question: True}
    code = zdd.main(argv, clock=world.clock, stdout=stdout, stderr=stderr, environ={}, **kwargs)
    return code, stdout.getvalue(), stderr.getvalue()


def assert_refused(world, code, stderr, expected_code):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert code == expected_code, stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    assert world.sim.writes() == [], "nothing may be written to Marathon"


@pytest.mark.parametrize("build, expected_code", CASES)
def test_bad_input(world, tmp_path, build, expected_code):
    seed_blue(world, 3)
    case = Case(world, tmp_path)
    try:
        code, _, stderr = run_main(world, build(case))
    finally:
        case.close()
    assert_refused(world, code, stderr, expected_code)
    if expected_code == 2:
        assert stderr.startswith("zdd: error: "), stderr


def test_format_json_valid_control_reaches_marathon(world, tmp_path):
    """The control case of the format-json rows: valid variables do write, so the refusals above are real."""
    seed_blue(world, 3)
    case = Case(world, tmp_path)
    argv = _format('{"count": 3}', APP_TEMPLATE)(case) + ["--log-level", "ERROR", "--max-wait", "0",
                                                         "--stall-timeout", "1"]
    run_main(world, argv)
    assert [record.method for record in world.sim.writes()][:1] == ["POST"]


def test_prompt_without_terminal_and_without_force(world, tmp_path):
    if sys.stdin is not None and sys.stdin.isatty():
        pytest.skip("standard input is a terminal here (pytest -s?): zdd would prompt")
    seed_blue(world, 3)
    code, _, stderr = run_main(world, Case(world, tmp_path).argv(), ask=NO_ASK)
    assert_refused(world, code, stderr, 3)
    assert "--force" in stderr


def test_first_deploy_with_bad_app_writes_nothing(world, tmp_path):
    """No previous app: a missing check would create the app at once."""
    case = Case(world, tmp_path)
    code, _, stderr = run_main(world, case.argv(app=case.app_file(label("HAPROXY_DEPLOYMENT_ALT_PORT", "0"))))
    assert_refused(world, code, stderr, 4)


def test_dcos_credentials_from_environment_are_checked(world, tmp_path):
    seed_blue(world, 3)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = zdd.main(Case(world, tmp_path).argv(), clock=world.clock, ask=lambda question: True, stdout=stdout,
                    stderr=stderr, environ={"DCOS_SERVICE_ACCOUNT_CREDENTIAL": "garbage"})
    assert_refused(world, code, stderr.getvalue(), 3)


def test_bad_environment_value_is_a_usage_error(world, tmp_path):
    seed_blue(world, 3)
    stdout, stderr = io.StringIO(), io.StringIO()
    code = zdd.main(Case(world, tmp_path).argv(), clock=world.clock, ask=lambda question: True, stdout=stdout,
                    stderr=stderr, environ={"ZDD_STEP_DELAY": "-5"})
    assert_refused(world, code, stderr.getvalue(), 2)


@pytest.mark.parametrize("url", ["http://[::1", "http://[::1]:70000", "ftp://marathon"])
def test_malformed_url_from_the_environment_is_exit_3(world, tmp_path, url):
    seed_blue(world, 3)
    argv = ["-l", world.lb.url, "-j", Case(world, tmp_path).app_file(), "--syslog-socket", "/dev/null"]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = zdd.main(argv, clock=world.clock, ask=lambda question: True, stdout=stdout, stderr=stderr,
                    environ={"ZDD_MARATHON": url})
    assert_refused(world, code, stderr.getvalue(), 3)
    assert "--marathon" in stderr.getvalue()


def test_malformed_url_hides_the_password(world, tmp_path):
    seed_blue(world, 3)
    case = Case(world, tmp_path)
    code, _, stderr = run_main(world, case.argv(marathon="http://alice:s3cret@[::1"))
    assert_refused(world, code, stderr, 3)
    assert "s3cret" not in stderr


@pytest.mark.parametrize("app", [
    pytest.param(lambda c: str(c.tmp / "missing.json"), id="app-file-missing"),
    pytest.param(lambda c: c.app_file(text="{"), id="malformed-json"),
    pytest.param(lambda c: c.app_file(without("labels", "HAPROXY_DEPLOYMENT_GROUP")), id="missing-group"),
])
def test_bad_app_is_reported_before_the_terminal_check(world, tmp_path, app):
    """Without -f and without a terminal, a bad app JSON is still reported as such (exit 4)."""
    if sys.stdin is not None and sys.stdin.isatty():
        pytest.skip("standard input is a terminal here (pytest -s?)")
    seed_blue(world, 3)
    case = Case(world, tmp_path)
    code, _, stderr = run_main(world, case.argv(app=app(case)), ask=NO_ASK)
    assert_refused(world, code, stderr, 4)
    assert "terminal" not in stderr


def test_dry_run_with_answering_lbs_passes(world, tmp_path):
    """The control case of the dry-run rows above: with every marathon-lb answering, a dry run ends 0."""
    seed_blue(world, 3)
    code, stdout, stderr = run_main(world, Case(world, tmp_path).argv("--dry-run"))
    assert code == 0, stderr
    assert json.loads(stdout)["id"] == "/nginx-green"
    assert world.sim.writes() == []


def test_resume_dry_run_checks_the_lbs_like_the_real_run(world, tmp_path):
    """--resume --dry-run with a marathon-lb down: exit 5 as the real --resume, and nothing written."""
    seed_blue(world, 3)
    seed_green(world)
    world.lb.down()
    case = Case(world, tmp_path)
    results = [run_main(world, case.argv("--resume", *dry)) for dry in (["--dry-run"], [])]
    for code, stdout, stderr in results:
        assert code == 5, stderr
        assert "Traceback" not in stderr and stdout == ""
        assert "marathon-lb does not answer" in stderr.splitlines()[-1]
    assert world.sim.writes() == []
