"""The loop's policies as pure functions, in tables: whether a transport error is permanent (by the exception
types behind it), the gate before a scale-up or the delete, when failed writes give up, and when to look again."""

import socket
import ssl

import pytest
import requests
import urllib3

import zdd


def _wrapped(cause, outer=requests.exceptions.ConnectionError):
    """``outer`` raised from ``cause`` as requests raises it: urllib3's error in its args, the cause behind it."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise urllib3.exceptions.NewConnectionError(None, "connect failed") from exc
    except Exception as exc:
        return outer(exc)


@pytest.mark.parametrize("exc, permanent", [
    (_wrapped(socket.gaierror(socket.EAI_NONAME, "Name or service not known")), True),
    (_wrapped(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")), False),
    (_wrapped(ssl.SSLCertVerificationError("certificate verify failed")), True),
    (requests.exceptions.SSLError("any text at all"), True),
    (_wrapped(ConnectionRefusedError(111, "Connection refused")), False),
    (_wrapped(ConnectionResetError(104, "Connection reset by peer")), False),
    (requests.exceptions.ConnectTimeout("host name does not resolve"), False),
    (requests.exceptions.ReadTimeout("TLS verification failed"), False),
    (requests.exceptions.ConnectionError("host name does not resolve"), False),
], ids=["no such name", "resolver busy", "certificate", "requests SSLError", "refused", "reset", "connect timeout",
        "read timeout", "text only"])
def test_a_permanent_transport_error_is_known_by_its_types_not_its_text(exc, permanent):
    assert zdd._permanent(exc) is permanent
