# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/mirror against real sockets: a local http.server, a closed port and a server that never answers."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time
from urllib.error import URLError

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import mirror
from ansible_collections.ragops.gpu_stack.tests.unit.module_runner import free_port


class Handler(http.server.BaseHTTPRequestHandler):
    """/key: a file; /no-head: a file that refuses HEAD (405) as some object stores do; /v2/: a registry
    that wants a login (401); anything else 404. Every request is recorded as (method, path)."""

    requests = []

    def _answer(self, body):
        self.requests.append((self.command, self.path))
        if self.path == '/key' or (self.path == '/no-head' and self.command == 'GET'):
            status = 200
        elif self.path == '/no-head':
            status = 405
        elif self.path == '/v2/':
            status = 401
        else:
            status = 404
        self.send_response(status)
        self.send_header('Content-Length', '2')
        self.end_headers()
        if body:
            self.wfile.write(b'ok')

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._answer(True)

    def do_HEAD(self):  # noqa: N802
        self._answer(False)

    def log_message(self, *args):  # keep pytest's output clean
        pass


@pytest.fixture
def server():
    """http://127.0.0.1:<port> of a running Handler server; its requests are recorded."""
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    Handler.requests = []
    yield 'http://127.0.0.1:%d' % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def silent():
    """A URL whose port accepts connections (the kernel's backlog) and never answers: a firewall that stalls."""
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(8)
    yield 'http://127.0.0.1:%d' % sock.getsockname()[1]
    sock.close()


def target(url, kind='file', what='the mirror', fix='fix it'):
    return dict(what=what, url=url, kind=kind, fix=fix)


def test_a_file_that_is_there_is_ok_with_one_head(server):
    result = mirror.check(target(server + '/key'))
    assert (result['ok'], result['status'], result['error']) == (True, 200, None)
    assert Handler.requests == [('HEAD', '/key')]


def test_a_missing_file_is_not_ok_and_says_the_status(server):
    result = mirror.check(target(server + '/gpgkey', what="NVIDIA's repository mirror", fix='set nvidia_container_toolkit_key_url'))
    assert (result['ok'], result['status'], result['error']) == (False, 404, 'HTTP 404 Not Found')
    assert mirror.failure_message(result) == (
        "cannot reach NVIDIA's repository mirror at %s/gpgkey (HTTP 404 Not Found): set nvidia_container_toolkit_key_url" % server)


def test_a_refused_head_is_asked_again_with_get(server):
    result = mirror.check(target(server + '/no-head'))
    assert (result['ok'], result['status']) == (True, 200)
    assert Handler.requests == [('HEAD', '/no-head'), ('GET', '/no-head')]


def test_a_server_probe_takes_any_http_answer(server):
    result = mirror.check(target(server + '/libnvidia-container', kind='server'))
    assert (result['ok'], result['status']) == (True, 404)


def test_a_registry_asking_for_a_login_answered(server):
    result = mirror.check(target(server + '/', kind='registry'))
    assert (result['ok'], result['status'], result['probe_url']) == (True, 401, server + '/v2/')
    assert Handler.requests == [('GET', '/v2/')]


def test_a_path_that_is_no_registry_is_not_ok(server):
    result = mirror.check(target(server + '/not-a-registry', kind='registry'))
    assert (result['ok'], result['status'], result['error']) == (False, 404, 'HTTP 404 Not Found')


def test_an_image_on_an_insecure_registry_is_probed_over_http(server):
    registry = server[len('http://'):]
    image = registry + '/ollama/ollama:0.33.0'
    result = mirror.check(target(image, kind='image'), insecure_registries=[registry])
    assert (result['ok'], result['probe_url']) == (True, server + '/v2/')
    # The same registry not listed as insecure: dockerd would use HTTPS, and so does the probe, which fails
    # against this plain-HTTP server (a TLS error, not a pass).
    result = mirror.check(target(image, kind='image'), timeout=2)
    assert result['probe_url'] == 'https://%s/v2/' % registry
    assert not result['ok'] and result['error']


def test_a_closed_port_is_connection_refused():
    url = 'http://127.0.0.1:%d/gpgkey' % free_port()
    result = mirror.check(target(url, what='the Docker repository mirror', fix='check docker_engine_ce_repo_url'))
    assert (result['ok'], result['status'], result['error']) == (False, None, 'connection refused')
    assert mirror.failure_message(result) == (
        'cannot reach the Docker repository mirror at %s (connection refused): check docker_engine_ce_repo_url' % url)


def test_a_server_that_never_answers_times_out_in_time(silent):
    start = time.monotonic()
    result = mirror.check(target(silent + '/key'), timeout=0.5)
    assert time.monotonic() - start < 3
    assert (result['ok'], result['error']) == (False, 'no answer within 0.5s')


def test_all_targets_are_probed_at_once_and_reported_in_order(server, silent):
    targets = [target(silent + '/a'), target(server + '/key'), target(silent + '/b')]
    start = time.monotonic()
    results = mirror.check_all(targets, timeout=1)
    # Two stalled probes take one timeout together, not two.
    assert time.monotonic() - start < 1.9
    assert [r['url'] for r in results] == [t['url'] for t in targets]
    assert [r['ok'] for r in results] == [False, True, False]
    assert mirror.check_all([]) == []


@pytest.mark.parametrize('url, kind, message', [
    ('ftp://mirror.example/key', 'file', 'ftp://mirror.example/key is not an http:// or https:// URL'),
    ('mirror.example/key', 'server', 'mirror.example/key is not an http:// or https:// URL'),
    ('ollama/ollama:0.33.0', 'image', 'ollama/ollama:0.33.0 names no registry'),
])
def test_targets_that_cannot_be_probed_say_why_without_a_request(url, kind, message):
    result = mirror.check(target(url, kind=kind), opener=pytest.fail)
    assert not result['ok'] and result['probe_url'] is None
    assert result['error'].startswith(message)


@pytest.mark.parametrize('image, registry', [
    ('ollama/ollama:0.33.0', None),
    ('ollama', None),
    ('docker.io/ollama/ollama:0.33.0', 'docker.io'),
    ('mirror.example.internal/ollama/ollama:0.33.0', 'mirror.example.internal'),
    ('registry:5000/pgvector/pgvector:pg17', 'registry:5000'),
    ('localhost/ollama/ollama', 'localhost'),
    ('library/postgres', None),
])
def test_image_registry_follows_dockers_reference_rule(image, registry):
    assert mirror.image_registry(image) == registry


@pytest.mark.parametrize('exc, reason', [
    (URLError(socket.gaierror(-2, 'Name or service not known')), 'the name does not resolve: Name or service not known'),
    (URLError(ConnectionRefusedError(111, 'Connection refused')), 'connection refused'),
    (URLError(socket.timeout('timed out')), 'no answer within 5s'),
    (TimeoutError('timed out'), 'no answer within 5s'),
    (URLError(OSError(113, 'No route to host')), 'no route to host'),
    (URLError(ssl.SSLError(1, 'WRONG_VERSION_NUMBER')), 'TLS error: '),
])
def test_errors_are_described_for_people(exc, reason):
    assert mirror.describe_error(exc, 5).startswith(reason)


def test_an_untrusted_certificate_is_named():
    error = ssl.SSLCertVerificationError(1, 'certificate verify failed')
    error.verify_message = 'self-signed certificate'
    assert mirror.describe_error(URLError(error), 5) == 'TLS certificate not trusted: self-signed certificate'


def test_an_opener_error_of_any_kind_fails_the_target_not_the_module():
    def opener(*args, **kwargs):
        raise ValueError('proxy URL malformed')
    result = mirror.check(target('https://mirror.example/key'), opener=opener)
    assert (result['ok'], result['error']) == (False, 'proxy URL malformed')
