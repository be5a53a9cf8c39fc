"""Secrets: HTTPS with a private CA, DC/OS service-account login, and no secret in any output.

The servers are real: a small front server on 127.0.0.1:0 (HTTPS when given a
certificate) checks credentials the way Marathon and DC/OS do, serves the DC/OS
login, and hands authorised Marathon calls to the world's MarathonSim. Keys
and certificates are generated here, in temporary directories.
"""

import base64
import datetime
import http.server
import io
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import urllib.parse
import uuid

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import zdd
from tests.helpers import run, seed_blue
from tests.sandbox.clock import FakeClock

LOGIN_PATH = "/acs/api/v1/auth/login"
UID = "zdd-deployer"
PASSWORD = "s3cr3t:pw"  # a password with a colon: split at the first one
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- keys and certificates --------------------------------------------------------------------


def _rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, subject_key, issuer, issuer_key, ca, sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
               .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()),
                                        critical=False)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                                        critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    """A CA, a server certificate it signed for 127.0.0.1 and localhost, and an unrelated CA."""

    def __init__(self, directory):
        ca_key, other_key, server_key = _rsa_key(), _rsa_key(), _rsa_key()
        ca_name = _name("zdd test CA")
        ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
        other_name = _name("unrelated test CA")
        other = _certificate(other_name, other_key, other_name, other_key, ca=True)
        server = _certificate(_name("localhost"), server_key, ca_name, ca_key, ca=False,
                              sans=(x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")))
        self.ca_pem = str(directory / "ca.pem")
        self.other_ca_pem = str(directory / "other-ca.pem")
        self.cert_pem = str(directory / "server.pem")
        self.key_pem = str(directory / "server-key.pem")
        for path, data in ((self.ca_pem, ca.public_bytes(serialization.Encoding.PEM)),
                           (self.other_ca_pem, other.public_bytes(serialization.Encoding.PEM)),
                           (self.cert_pem, server.public_bytes(serialization.Encoding.PEM)),
                           (self.key_pem, _pem(server_key).encode())):
            with open(path, "wb") as handle:
                handle.write(data)

    def server_context(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_pem, self.key_pem)
        return context


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def service_key():
    """The DC/OS service account's RSA key pair: (private key PEM, public key)."""
    key = _rsa_key()
    return _pem(key), key.public_key()


# --- the servers --------------------------------------------------------------------------------


class AcsLogin:
    """DC/OS's login: checks the RS256 login token, hands out ACS tokens, and checks them later.

    ACS tokens are HS256 JWTs whose ``exp`` is ``lifetime_s`` after the time of
    issue on the world's fake clock (zdd reads that); they are honoured for
    ``lifetime_s`` seconds of that clock, so a run that sleeps past that must
    have logged in again. The login token's ``exp`` is checked against the
    same clock (PyJWT's own check would use the real time): zdd must sign with
    the clock it was given.
    """

    def __init__(self, public_key, clock, lifetime_s=3600, refuse=False):
        self.public_key = public_key
        self.clock = clock
        self.lifetime_s = lifetime_s
        self.refuse = refuse
        self.secret = os.urandom(32)
        self.issued = {}  # jti -> fake monotonic time of issue
        self.posted = []  # the login bodies
        self.tokens = []  # the ACS tokens handed out
        self.rejected = []  # why a login or a Marathon call was refused
        self.lock = threading.Lock()

    def login(self, body):
        with self.lock:
            self.posted.append(body)
            if self.refuse:
                return 401, {"title": "Unauthorized", "description": "login refused"}
            try:
                claims = jwt.decode(body["token"], self.public_key, algorithms=["RS256"], options={"verify_exp": False})
            except (jwt.InvalidTokenError, KeyError, TypeError) as exc:
                return self._reject(f"login token: {exc}")
            if claims.get("uid") != UID or body.get("uid") != UID:
                return self._reject(f"login for uid {claims.get('uid')!r}/{body.get('uid')!r}")
            if not 0 < claims["exp"] - self.epoch_s() <= 120:
                return self._reject(f"login token exp {claims['exp']} is not in the near future")
            jti = uuid.uuid4().hex
            issued_at = int(self.epoch_s())
            token = jwt.encode({"uid": UID, "iat": issued_at, "exp": issued_at + self.lifetime_s, "jti": jti},
                               self.secret, algorithm="HS256")
            self.issued[jti] = self.clock.monotonic()
            self.tokens.append(token)
            return 200, {"token": token}

    def epoch_s(self):
        return self.clock.utcnow().replace(tzinfo=datetime.timezone.utc).timestamp()

    def _reject(self, why):
        self.rejected.append(why)
        return 401, {"title": "Unauthorized"}

    def authorised(self, headers):
        value = headers.get("Authorization") or ""
        if not value.startswith("token="):
            return self._note(f"no ACS token ({value.split(' ')[0] or 'no header'})")
        try:
            claims = jwt.decode(value[len("token="):], self.secret, algorithms=["HS256"], options={"verify_exp": False})
        except jwt.InvalidTokenError as exc:
            return self._note(f"ACS token: {exc}")
        with self.lock:
            issued = self.issued.get(claims.get("jti"))
        if issued is None:
            return self._note("unknown ACS token")
        if self.clock.monotonic() - issued >= self.lifetime_s:
            return self._note("expired ACS token")
        return True

    def _note(self, why):
        with self.lock:
            self.rejected.append(why)
        return False


def _basic_checker(user, password):
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return lambda headers: headers.get("Authorization") == expected


def _apps_empty(method, path, query, headers, body_bytes):
    if method == "GET" and path == "/v2/apps":
        return 200, {"apps": []}, {}
    return 404, {"message": "not found"}, {}


class Front:
    """Marathon's front door on 127.0.0.1:0: optional TLS, credentials, the DC/OS login.

    ``backend`` answers authorised Marathon calls with the signature of
    ``MarathonSim.handle``; ``check`` says whether a request's headers carry valid
    credentials (None: no check).
    """

    def __init__(self, backend=_apps_empty, tls=None, check=None, acs=None):
        self.backend = backend
        self.tls = tls
        self.check = check
        self.acs = acs
        self.seen = []  # (method, path, status)
        self.refused = 0  # 401s sent
        self.lock = threading.Lock()
        self.server = None
        self.thread = None

    def start(self):
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def _serve(self):
                front._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that rejects the certificate breaks the connection: expected here

            def finish_request(self, request, client_address):
                if front.tls is None:
                    return super().finish_request(request, client_address)
                try:
                    request = front.tls.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError):  # the client refused the certificate
                    return None
                try:
                    return super().finish_request(request, client_address)
                finally:
                    request.close()

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       name="front", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)
            self.server = None

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.server.server_address[1]}"

    @property
    def login_url(self):
        return self.url + LOGIN_PATH

    def _serve(self, handler):
        parsed = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body_bytes = handler.rfile.read(length) if length else b""
        if parsed.path == LOGIN_PATH and handler.command == "POST" and self.acs is not None:
            try:
                body = json.loads(body_bytes)
            except ValueError:
                body = None
            status, payload = self.acs.login(body if isinstance(body, dict) else {})
            extra = {}
        elif self.check is not None and not self.check(handler.headers):
            status, payload, extra = 401, {"message": "Unauthorized"}, {"WWW-Authenticate": "Basic realm=marathon"}
        else:
            query = {key: values[-1] for key, values in
                     urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}
            status, payload, extra = self.backend(handler.command, parsed.path, query, handler.headers, body_bytes)
        with self.lock:
            self.seen.append((handler.command, parsed.path, status))
            self.refused += status == 401
        if payload is None:
            data = b""
        else:
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain" if isinstance(payload, str) else "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def fronts():
    """Start Front servers; every one is stopped at teardown, even when the test fails."""
    started = []

    def start(**kwargs):
        front = Front(**kwargs).start()
        started.append(front)
        return front

    try:
        yield start
    finally:
        for front in started:
            front.stop()


# --- running zdd ---------------------------------------------------------------------------------


def run_at(marathon_url, lb_url, app, *args, clock=None, environ=None):
    """tests/helpers.py's ``run`` against these URLs, on a new fake clock unless given; (exit code, stdout, stderr)."""
    return run(None, app, *args, marathon=marathon_url, lbs=lb_url, clock=clock or FakeClock(), environ=environ)


def dcos_json(service_key, login_endpoint):
    return json.dumps({"uid": UID, "private_key": service_key[0], "login_endpoint": login_endpoint})


def error_lines(err):
    """stderr lines that are not progress or retry lines."""
    return [line for line in err.splitlines() if line.strip() and " trying again in " not in line]


def assert_one_line_error(err, *words):
    assert "Traceback" not in err, err
    lines = error_lines(err)
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], err


# --- 1. TLS --------------------------------------------------------------------------------------


def test_https_marathon_with_the_ca_bundle(fronts, pki, app_path):
    front = fronts(tls=pki.server_context())
    code, out, err = run_at(front.url, "http://127.0.0.1:9", app_path, "--dry-run", "--marathon-ca-cert", pki.ca_pem)
    assert code == 0, err
    assert ("GET", "/v2/apps", 200) in front.seen
    assert json.loads(out)["id"] == "/nginx-blue"


def test_https_marathon_with_the_ca_bundle_wins_over_requests_ca_bundle(fronts, pki, app_path, monkeypatch):
    """An operator's REQUESTS_CA_BUNDLE (here: an unrelated CA) must not replace --marathon-ca-cert."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.other_ca_pem)
    monkeypatch.setenv("CURL_CA_BUNDLE", pki.other_ca_pem)
    front = fronts(tls=pki.server_context())
    code, _, err = run_at(front.url, "http://127.0.0.1:9", app_path, "--dry-run", "--marathon-ca-cert", pki.ca_pem)
    assert code == 0, err
    assert ("GET", "/v2/apps", 200) in front.seen


def test_https_marathon_without_the_ca_fails_tls_verification(fronts, pki, app_path):
    front = fronts(tls=pki.server_context())
    code, out, err = run_at(front.url, "http://127.0.0.1:9", app_path, "--dry-run")
    assert code == 6, err
    assert_one_line_error(err, "TLS verification")
    assert front.seen == []
    assert out == ""


def test_https_marathon_with_another_ca_fails_tls_verification(fronts, pki, app_path):
    front = fronts(tls=pki.server_context())
    code, _, err = run_at(front.url, "http://127.0.0.1:9", app_path, "--dry-run", "--marathon-ca-cert",
                          pki.other_ca_pem)
    assert code == 6, err
    assert_one_line_error(err, "TLS verification")
    assert front.seen == []


def test_https_dcos_login_uses_the_ca_bundle(fronts, pki, service_key, app_path, world):
    acs = AcsLogin(service_key[1], world.clock)
    login = fronts(tls=pki.server_context(), acs=acs)
    marathon = fronts(check=acs.authorised)
    credentials = dcos_json(service_key, login.login_url)
    code, _, err = run_at(marathon.url, world.lb.url, app_path, "--dry-run", "--marathon-ca-cert", pki.ca_pem,
                       "--dcos-auth-credentials", credentials, clock=world.clock)
    assert code == 0, err
    assert len(acs.tokens) == 1 and acs.rejected == []
    assert marathon.seen == [("GET", "/v2/apps", 200)]


def test_https_dcos_login_without_the_ca_fails_tls_verification(fronts, pki, service_key, app_path, world):
    acs = AcsLogin(service_key[1], world.clock)
    login = fronts(tls=pki.server_context(), acs=acs)
    marathon = fronts(check=acs.authorised)
    credentials = dcos_json(service_key, login.login_url)
    code, _, err = run_at(marathon.url, world.lb.url, app_path, "--dry-run", "--dcos-auth-credentials", credentials,
                       clock=world.clock)
    assert code == 6, err
    assert_one_line_error(err, "DC/OS login", "TLS verification")
    assert acs.posted == [] and login.seen == []
    assert marathon.seen == []


def test_everything_over_https_with_dcos_login(fronts, pki, service_key, app_path, world):
    """Marathon and the login on one HTTPS front, as behind DC/OS's admin router: a full swap."""
    acs = AcsLogin(service_key[1], world.clock)
    front = fronts(backend=world.sim.handle, tls=pki.server_context(), check=acs.authorised, acs=acs)
    seed_blue(world, 3)
    code, _, err = run_at(front.url, world.lb.url, app_path, "--marathon-ca-cert", pki.ca_pem,
                       "--dcos-auth-credentials", dcos_json(service_key, front.login_url), clock=world.clock)
    assert code == 0, err
    assert {app["id"] for app in world.sim.api_apps()} == {"/nginx-green"}
    assert len(acs.posted) == 1 and front.refused == 0


def _no_leader(method, path, query, headers, body_bytes):
    return 503, {"message": "Could not determine the current leader"}, {}


@pytest.mark.parametrize("where", ["in-each-url", "auth-credentials"])
def test_several_https_masters_each_with_the_ca_and_its_credentials(fronts, pki, app_path, where):
    """The first master (its leader unreachable) answers 503: the second is asked with its own credentials, the CA."""
    users = {"in-each-url": (("alice", "pw-one"), ("bob", "pw-two")), "auth-credentials": ((UID, PASSWORD),) * 2}
    first_user, second_user = users[where]
    first = fronts(backend=_no_leader, tls=pki.server_context(), check=_basic_checker(*first_user))
    second = fronts(tls=pki.server_context(), check=_basic_checker(*second_user))
    if where == "in-each-url":
        masters = ",".join(front.url.replace("https://", f"https://{user}:{password}@")
                           for front, (user, password) in ((first, first_user), (second, second_user)))
        extra = ()
    else:
        masters, extra = f"{first.url},{second.url}", ("--auth-credentials", f"{UID}:{PASSWORD}")
    code, out, err = run_at(masters, "http://127.0.0.1:9", app_path, "--dry-run", "--marathon-ca-cert", pki.ca_pem,
                         *extra)
    assert code == 0, err
    assert first.seen == [("GET", "/v2/apps", 503)] and ("GET", "/v2/apps", 200) in second.seen
    assert "answered HTTP 503; asking the next Marathon master" in err
    assert "pw-" not in err + out and PASSWORD not in err + out


# --- 2. DC/OS login ------------------------------------------------------------------------------


def _dcos_world(fronts, world, service_key, **acs_options):
    acs = AcsLogin(service_key[1], world.clock, **acs_options)
    front = fronts(backend=world.sim.handle, check=acs.authorised, acs=acs)
    return acs, front


def test_dcos_logs_in_once_for_a_whole_deployment(fronts, world, service_key, app_path):
    acs, front = _dcos_world(fronts, world, service_key)
    seed_blue(world, 10)
    code, _, err = run_at(front.url, world.lb.url, app_path, "--dcos-auth-credentials",
                       dcos_json(service_key, front.login_url), clock=world.clock)
    assert code == 0, err
    assert {app["id"] for app in world.sim.api_apps()} == {"/nginx-green"}
    marathon_calls = [seen for seen in front.seen if seen[1] != LOGIN_PATH]
    assert len(marathon_calls) > 20  # many polls and writes ...
    assert len(acs.posted) == 1  # ... one login
    assert front.refused == 0 and acs.rejected == []
    assert acs.posted[0]["uid"] == UID and acs.posted[0]["token"].count(".") == 2


def test_dcos_token_near_expiry_is_refreshed(fronts, world, service_key, app_path):
    """ACS tokens honoured for 120 s of the fake clock, steps 100 s apart: zdd must log in again in time."""
    acs, front = _dcos_world(fronts, world, service_key, lifetime_s=120)
    seed_blue(world, 10)
    started = world.clock.monotonic()
    code, _, err = run_at(front.url, world.lb.url, app_path, "--dcos-auth-credentials",
                       dcos_json(service_key, front.login_url), "--min-step-interval", "100", clock=world.clock)
    elapsed = world.clock.monotonic() - started
    assert code == 0, err
    assert elapsed > 3 * 120, "the swap must outlast several token lifetimes for this test to mean anything"
    assert front.refused == 0 and acs.rejected == []  # every call carried a live token
    assert {app["id"] for app in world.sim.api_apps()} == {"/nginx-green"}
    # refreshed a margin before expiry, once per lifetime at most, not before every call
    marathon_calls = [seen for seen in front.seen if seen[1] != LOGIN_PATH]
    assert elapsed / 120 < len(acs.posted) <= elapsed / 60 + 2
    assert len(acs.posted) < len(marathon_calls) / 2


def test_dcos_long_lived_token_is_not_refreshed_during_long_waits(fronts, world, service_key, app_path):
    acs, front = _dcos_world(fronts, world, service_key, lifetime_s=3600)
    seed_blue(world, 10)
    started = world.clock.monotonic()
    code, _, err = run_at(front.url, world.lb.url, app_path, "--dcos-auth-credentials",
                       dcos_json(service_key, front.login_url), "--min-step-interval", "100", clock=world.clock)
    assert code == 0, err
    assert world.clock.monotonic() - started > 3 * 120
    assert len(acs.posted) == 1 and front.refused == 0


def test_dcos_bad_private_key_is_exit_3(fronts, world, service_key, app_path):
    acs, front = _dcos_world(fronts, world, service_key)
    credentials = json.dumps({"uid": UID, "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n"
                              "-----END PRIVATE KEY-----\n", "login_endpoint": front.login_url})
    code, out, err = run_at(front.url, world.lb.url, app_path, "--dcos-auth-credentials", credentials,
                         clock=world.clock)
    assert code == 3, err
    assert_one_line_error(err, "private key")
    assert acs.posted == [] and front.seen == []
    assert "not a key" not in out + err


def test_dcos_login_refused_is_exit_6(fronts, world, service_key, app_path):
    acs, front = _dcos_world(fronts, world, service_key, refuse=True)
    code, _, err = run_at(front.url, world.lb.url, app_path, "--dcos-auth-credentials",
                       dcos_json(service_key, front.login_url), clock=world.clock)
    assert code == 6, err
    assert_one_line_error(err, "DC/OS login", "401")
    assert len(acs.posted) == 1
    assert [seen for seen in front.seen if seen[1] != LOGIN_PATH] == []


def test_dcos_login_with_a_key_the_server_does_not_know_is_refused(fronts, world, service_key, app_path):
    """The fake login really checks the signature: another key is refused, and zdd says so (exit 6)."""
    acs, front = _dcos_world(fronts, world, service_key)
    other = (_pem(_rsa_key()), None)
    code, _, err = run_at(front.url, world.lb.url, app_path, "--dcos-auth-credentials",
                       dcos_json(other, front.login_url), clock=world.clock)
    assert code == 6, err
    assert_one_line_error(err, "DC/OS login", "401")
    assert len(acs.rejected) == 1 and "login token" in acs.rejected[0]


def test_marathon_refuses_calls_without_a_token(fronts, world, service_key, app_path):
    """The authenticating front is not a no-op: without credentials Marathon answers 401 (exit 6)."""
    _, front = _dcos_world(fronts, world, service_key)
    code, _, err = run_at(front.url, world.lb.url, app_path, "--dry-run", clock=world.clock)
    assert code == 6, err
    assert_one_line_error(err, "401")


def test_dcos_credentials_from_the_environment(fronts, world, service_key, app_path):
    acs, front = _dcos_world(fronts, world, service_key)
    seed_blue(world, 3)
    environ = {"DCOS_SERVICE_ACCOUNT_CREDENTIAL": dcos_json(service_key, front.login_url)}
    code, _, err = run_at(front.url, world.lb.url, app_path, clock=world.clock, environ=environ)
    assert code == 0, err
    assert {app["id"] for app in world.sim.api_apps()} == {"/nginx-green"}
    assert len(acs.posted) == 1 and front.refused == 0


@pytest.mark.parametrize("source", ["flag", "env"])
def test_dcos_credentials_from_a_file(fronts, world, service_key, app_path, tmp_path, source):
    """--dcos-auth-credentials (or $DCOS_SERVICE_ACCOUNT_CREDENTIAL) may name a file holding the JSON."""
    acs, front = _dcos_world(fronts, world, service_key)
    seed_blue(world, 3)
    credentials = tmp_path / "service-account.json"
    credentials.write_text(dcos_json(service_key, front.login_url) + "\n")
    given = ("--dcos-auth-credentials", str(credentials)) if source == "flag" else ()
    environ = {"DCOS_SERVICE_ACCOUNT_CREDENTIAL": str(credentials)} if source == "env" else {}
    code, _, err = run_at(front.url, world.lb.url, app_path, *given, clock=world.clock, environ=environ)
    assert code == 0, err
    assert {app["id"] for app in world.sim.api_apps()} == {"/nginx-green"}
    assert len(acs.posted) == 1 and front.refused == 0


# --- 3. secrets never leak -----------------------------------------------------------------------


class Scenario:
    """One run of zdd with secrets; ``secrets()`` lists every string that must not be printed."""

    def __init__(self, name, code, dry_run=False, fail=None, output_json=False, source="flag", auth="basic",
                 url_credentials=False, lb_credentials=False, abbreviate=False):
        self.name = name
        self.code = code
        self.dry_run = dry_run
        self.fail = fail
        self.output_json = output_json
        self.source = source
        self.auth = auth
        self.url_credentials = url_credentials
        self.lb_credentials = lb_credentials
        self.abbreviate = abbreviate

    def __repr__(self):
        return self.name


SCENARIOS = [
    Scenario("basic-flag", 0),
    Scenario("basic-flag-abbreviated", 9, fail="scale", abbreviate=True),
    Scenario("basic-file", 0, source="file"),
    Scenario("basic-env", 0, source="env"),
    Scenario("basic-dry-run", 0, dry_run=True),
    Scenario("basic-json-output", 0, output_json=True),
    Scenario("basic-create-fails", 7, fail="create"),
    Scenario("basic-scale-fails", 9, fail="scale"),
    Scenario("basic-scale-fails-json", 9, fail="scale", output_json=True),
    Scenario("basic-env-scale-fails", 9, fail="scale", source="env"),
    Scenario("url-credentials", 0, auth="url", url_credentials=True),
    Scenario("url-credentials-scale-fails", 9, fail="scale", auth="url", url_credentials=True),
    Scenario("lb-url-credentials-json", 0, output_json=True, lb_credentials=True),
    Scenario("lb-url-credentials-scale-fails", 9, fail="scale", lb_credentials=True),
    Scenario("dcos-flag", 0, auth="dcos"),
    Scenario("dcos-env", 0, auth="dcos", source="env"),
    Scenario("dcos-dry-run", 0, auth="dcos", dry_run=True),
    Scenario("dcos-json-output", 0, auth="dcos", output_json=True),
    Scenario("dcos-scale-fails", 9, auth="dcos", fail="scale"),
    Scenario("dcos-env-create-fails", 7, auth="dcos", source="env", fail="create"),
]


def _secret_fragments(text):
    """The text, and each line of it long enough to be telling."""
    return [text] + [line for line in text.splitlines() if len(line) >= 16 and "-----" not in line]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=repr)
def test_no_secret_in_any_output(scenario, fronts, world, service_key, app_path, tmp_path):
    secrets = [PASSWORD]
    argv, environ = [], {}
    lb_url = world.lb.url
    if scenario.lb_credentials:
        lb_password = "lbS3cretWord"
        secrets.append(lb_password)
        lb_url = lb_url.replace("http://", f"http://stats:{lb_password}@")
    acs = None
    if scenario.auth == "dcos":
        acs = AcsLogin(service_key[1], world.clock)
        front = fronts(backend=world.sim.handle, check=acs.authorised, acs=acs)
        credentials = dcos_json(service_key, front.login_url)
        secrets += _secret_fragments(service_key[0])
        if scenario.source == "env":
            environ["DCOS_SERVICE_ACCOUNT_CREDENTIAL"] = credentials
        else:
            argv += ["--dcos-auth-credentials", credentials]
    else:
        front = fronts(backend=world.sim.handle, check=_basic_checker(UID, PASSWORD))
        if scenario.auth == "url":
            pass
        elif scenario.source == "env":
            environ["ZDD_AUTH_CREDENTIALS"] = f"{UID}:{PASSWORD}"
        elif scenario.source == "file":
            credential_file = tmp_path / "marathon-credentials"
            credential_file.write_text(f"{UID}:{PASSWORD}\n")
            argv += ["--marathon-auth-credential-file", str(credential_file)]
        else:
            argv += ["--auth-cred" if scenario.abbreviate else "--auth-credentials", f"{UID}:{PASSWORD}"]
    marathon_url = front.url
    if scenario.url_credentials:
        marathon_url = marathon_url.replace("http://", f"http://{UID}:{urllib.parse.quote(PASSWORD, safe='')}@")
        secrets.append(urllib.parse.quote(PASSWORD, safe=""))
    if scenario.dry_run:
        argv.append("--dry-run")
    if scenario.output_json:
        argv += ["--output", "json"]
    # a 500 to a write is ambiguous (zdd reads Marathon and tries again, a scale until --stall-timeout): keep failing
    if scenario.fail == "create":
        world.sim.fail_next("POST", r"^/v2/apps$", 500, count=1000)
    elif scenario.fail == "scale":
        world.sim.fail_next("PUT", r"^/v2/apps/nginx-green$", 500, count=1000)
    seed_blue(world, 3)

    code, out, err = run_at(marathon_url, lb_url, app_path, *argv, clock=world.clock, environ=environ)

    assert code == scenario.code, err
    assert front.refused == 0, "zdd must have sent the credentials (else this test proves nothing)"
    assert any(path != LOGIN_PATH for _, path, _ in front.seen)
    if acs is not None:
        assert acs.tokens and acs.rejected == []
        secrets += acs.tokens + [body["token"] for body in acs.posted]
    printed = out + err
    for secret in secrets:
        assert secret not in printed, f"secret {secret[:12]}... printed:\n{printed}"
    finish = [line for line in err.splitlines() if "to finish: zdd " in line]
    if scenario.fail == "scale":  # the new app exists: zdd says how to finish (a failed create may not)
        assert len(finish) == 1, err
    for line in finish:
        if scenario.source == "flag" and scenario.auth == "basic":
            flag = "--auth-cred" if scenario.abbreviate else "--auth-credentials"
            assert f"{flag} '***'" in line
        if scenario.source == "flag" and scenario.auth == "dcos":
            assert "--dcos-auth-credentials '***'" in line
        if scenario.url_credentials:
            assert f"{UID}:***@" in line
        assert line.endswith("--resume")
    if scenario.output_json:
        events = [json.loads(line) for line in out.splitlines()]
        assert events[-1]["event"] == "finished"


DCOS_P1 = json.dumps({"uid": UID, "private_key": "p1", "login_endpoint": "https://dcos/acs/api/v1/auth/login"})


@pytest.mark.parametrize("words, secret", [
    (["--auth-credentials", "u:p1"], "p1"),
    (["--auth-credentials=u:p1"], "p1"),
    (["--auth-cred", "u:p1"], "p1"),
    (["--auth=u:p1"], "p1"),
    (["--dcos-auth-credentials", DCOS_P1], "p1"),
    (["--dcos-auth-credentials=" + DCOS_P1], "p1"),
    (["--dcos", DCOS_P1], "p1"),
    (["-m", "http://u:p1@marathon:8080"], "p1"),
    (["-mhttp://u:p1@marathon:8080"], "p1"),
    (["--marathon=https://u:p1:x@y@marathon:8443/path"], "p1"),
    (["-l", "http://stats:p1@lb1:9090,http://stats:p1@lb2:9090"], "p1"),
], ids=lambda value: value if isinstance(value, str) else " ".join(value)[:40])
def test_resume_command_masks_every_form_of_a_secret(words, secret):
    argv = ["-m", "http://marathon:8080", "-l", "http://lb:9090", "-j", "app.json", *words, "-f"]
    parsed = zdd.parse_options(argv, environ={})  # argparse accepts each form
    assert secret in repr((parsed.auth, parsed.dcos_credentials, parsed.marathon, parsed.marathon_lb))
    command = zdd.resume_command(argv)
    assert secret not in command, command
    assert "***" in command
    assert command.endswith("-f --resume")


def test_help_does_not_show_a_secret_from_the_environment():
    environ = dict(os.environ, ZDD_AUTH_CREDENTIALS=f"{UID}:{PASSWORD}",
                   ZDD_DCOS_AUTH_CREDENTIALS=json.dumps({"uid": UID, "private_key": "PRIVATEKEYBODY",
                                                         "login_endpoint": "https://dcos/acs/api/v1/auth/login"}))
    result = subprocess.run([sys.executable, os.path.join(REPO, "zdd.py"), "--help"], env=environ,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "--auth-credentials" in result.stdout
    for secret in (PASSWORD, "s3cr3t", "PRIVATEKEYBODY"):
        assert secret not in result.stdout + result.stderr


class RevokingAcs(AcsLogin):
    """Revokes every token once, after ten authorised Marathon calls."""

    calls = 0

    def authorised(self, headers):
        allowed = super().authorised(headers)
        if allowed:
            self.calls += 1
            if self.calls == 10:
                with self.lock:
                    self.issued.clear()
        return allowed


def test_dcos_revoked_token_means_one_new_login(fronts, world, service_key, app_path):
    acs = RevokingAcs(service_key[1], world.clock)
    front = fronts(backend=world.sim.handle, check=acs.authorised, acs=acs)
    seed_blue(world, 10)
    code, _, err = run_at(front.url, world.lb.url, app_path, "--dcos-auth-credentials",
                       dcos_json(service_key, front.login_url), clock=world.clock)
    assert code == 0, err
    assert len(acs.posted) == 2
    assert front.refused == 1
    assert {app["id"] for app in world.sim.api_apps()} == {"/nginx-green"}


def test_help_returns_zero():
    assert zdd.main(["--help"], stdout=io.StringIO()) == 0
    assert zdd.main(["--version"], stdout=io.StringIO()) == 0
