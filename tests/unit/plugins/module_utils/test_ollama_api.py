# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Ollama client's pull stream where a server misbehaves in ways the double does not play:
a stream that stalls, one cut without its last chunk, HTTP errors before streaming, and a
load routed by the model's kind."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import OllamaClient, OllamaError


class Scripted(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    script = None  # set per server: a function(handler) answering one request
    bodies = None

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def _serve(self):
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        self.bodies.append((self.command, self.path, json.loads(body) if body else None))
        self.script(self)

    do_GET = do_POST = do_DELETE = _serve

    def start_stream(self):
        self.send_response(200)
        self.send_header('Content-Type', 'application/x-ndjson')
        self.send_header('Transfer-Encoding', 'chunked')
        self.end_headers()

    def chunk(self, obj):
        data = json.dumps(obj).encode() + b'\n'
        self.wfile.write(b'%x\r\n%s\r\n' % (len(data), data))
        self.wfile.flush()

    def end(self):
        self.wfile.write(b'0\r\n\r\n')
        self.wfile.flush()

    def answer(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def serve():
    servers = []

    def _serve(script):
        handler = type('Handler', (Scripted,), {'script': staticmethod(script), 'bodies': []})
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return 'http://127.0.0.1:%d' % server.server_address[1], handler.bodies

    yield _serve
    for server in servers:
        server.shutdown()
        server.server_close()


LINE = {'status': 'pulling abcdefabcdef', 'digest': 'sha256:' + 'ab' * 32, 'total': 100, 'completed': 10}


def test_a_stream_that_goes_silent_is_a_stall(serve):
    release = threading.Event()

    def stall(handler):
        handler.start_stream()
        handler.chunk({'status': 'pulling manifest'})
        handler.chunk(LINE)
        release.wait(10)

    url, _bodies = serve(stall)
    seen = []
    started = time.monotonic()
    with pytest.raises(OllamaError) as info:
        for line in OllamaClient(url).pull('x', stall_timeout=1):
            seen.append(line)
    release.set()
    assert info.value.kind == 'stalled' and 'no progress from Ollama for 1 s' in info.value.message
    assert seen == [{'status': 'pulling manifest'}, LINE] and time.monotonic() - started < 5


def test_a_cut_stream_is_a_drop(serve):
    def cut(handler):
        handler.start_stream()
        handler.chunk(LINE)
        handler.wfile.write(b'40\r\n{"status": "pull')  # half a chunk, then the connection goes
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        handler.close_connection = True

    url, _bodies = serve(cut)
    with pytest.raises(OllamaError) as info:
        list(OllamaClient(url).pull('x'))
    assert info.value.kind == 'dropped'


def test_a_stream_that_ends_without_success_is_a_drop(serve):
    def short(handler):
        handler.start_stream()
        handler.chunk(LINE)
        handler.end()

    url, _bodies = serve(short)
    with pytest.raises(OllamaError, match='ended before "success"') as info:
        list(OllamaClient(url).pull('x'))
    assert info.value.kind == 'dropped'


@pytest.mark.parametrize('status, error, kind', [
    (400, 'invalid model name', 'bad_name'),
    (500, 'insecure protocol http', 'other'),
    (500, 'pull model manifest: file does not exist', 'unknown_model'),
])
def test_http_errors_before_the_stream(serve, status, error, kind):
    url, bodies = serve(lambda handler: handler.answer(status, {'error': error}))
    with pytest.raises(OllamaError) as info:
        list(OllamaClient(url).pull('x', insecure=True))
    assert (info.value.kind, info.value.status, info.value.message) == (kind, status, error)
    assert bodies == [('POST', '/api/pull', {'model': 'x', 'insecure': True, 'stream': True})]


def test_an_error_line_under_http_200(serve):
    def error_line(handler):
        handler.start_stream()
        handler.chunk({'status': 'pulling manifest'})
        handler.chunk({'error': 'pull model manifest: 412: requires a newer version of Ollama'})
        handler.end()

    url, _bodies = serve(error_line)
    with pytest.raises(OllamaError) as info:
        list(OllamaClient(url).pull('x'))
    assert info.value.kind == 'newer_version'


def test_load_uses_generate_or_embed_with_keep_alive_as_ollama_reads_it(serve):
    url, bodies = serve(lambda handler: handler.answer(200, {'done': True}))
    client = OllamaClient(url)
    client.load('llama3.2:latest', '-1')
    client.load('nomic-embed-text:latest', '10m', embedding=True)
    client.load('qwen2.5:0.5b')
    assert bodies == [
        ('POST', '/api/generate', {'model': 'llama3.2:latest', 'keep_alive': -1, 'stream': False}),
        ('POST', '/api/embed', {'model': 'nomic-embed-text:latest', 'keep_alive': '10m', 'input': []}),
        ('POST', '/api/generate', {'model': 'qwen2.5:0.5b', 'stream': False}),
    ]


def test_something_else_at_the_address_is_said(serve):
    def not_ollama(handler):
        data = b'<html>hello</html>'
        handler.send_response(200)
        handler.send_header('Content-Length', str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    url, _bodies = serve(not_ollama)
    with pytest.raises(OllamaError, match=r'not a JSON answer \(is this Ollama\?\)'):
        OllamaClient(url).tags()
