# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Ollama HTTP client of the collection: version, tags, ps, show, delete, pull, load, embed.

Every failure is an OllamaError whose ``kind`` says what happened, read from Ollama's own
words (server/images.go, server/download.go at v0.33), so callers can say what to do about
it. ``requests`` is imported once and guarded: modules call ``require_requests(module)``
first, which fails with ``missing_required_lib('requests')`` when it is absent.
"""

from __future__ import annotations

import json
import traceback

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError:
    requests = None
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()

try:
    # requests reports a read timeout inside a streamed body as a ConnectionError wrapping this.
    from urllib3.exceptions import ReadTimeoutError
except ImportError:
    class ReadTimeoutError(Exception):
        """Stand-in: nothing raises it without urllib3."""

from ansible.module_utils.basic import missing_required_lib

DEFAULT_API_URL = 'http://127.0.0.1:11434'

# Error kinds; see classify().
UNREACHABLE_SERVER = 'unreachable_server'
REGISTRY_UNREACHABLE = 'registry_unreachable'
UNKNOWN_MODEL = 'unknown_model'
NEWER_VERSION = 'newer_version'
DISK_FULL = 'disk_full'
BAD_NAME = 'bad_name'
DROPPED = 'dropped'
STALLED = 'stalled'
OTHER = 'other'

# A pull interrupted by one of these resumes where it stopped when it is issued again.
RETRYABLE = (DROPPED, STALLED)

# How Ollama words a registry it cannot reach: the Go net/http and net errors under
# `pull model manifest: Get "https://registry.ollama.ai/v2/...": ...`.
_NETWORK_WORDS = ('dial tcp', 'no such host', 'connection refused', 'i/o timeout', 'network is unreachable',
                  'tls handshake timeout', 'proxyconnect', 'connection reset', 'no route to host',
                  'server misbehaving', 'x509:', 'certificate')


class OllamaError(Exception):
    """A request to Ollama failed; ``kind`` is one of the kinds above, ``status`` the HTTP status if any."""

    def __init__(self, message, kind=OTHER, status=None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.status = status


def classify(message, status=None):
    """The kind of an error Ollama answered with ``{"error": message}`` (a body or a stream line)."""
    text = (message or '').lower()
    if 'no space left on device' in text:
        return DISK_FULL
    if 'pull model manifest: 412' in text or 'requires a newer version of ollama' in text:
        return NEWER_VERSION
    if 'file does not exist' in text or (status == 404 and 'not found' in text):
        return UNKNOWN_MODEL
    if status == 400 and ('invalid model name' in text or 'is invalid' in text):
        return BAD_NAME
    if text.startswith('max retries exceeded'):
        # download.go gave up on a blob part after its own retries: the registry connection broke.
        return DROPPED
    if text.startswith('pull model manifest: get ') or any(word in text for word in _NETWORK_WORDS):
        return REGISTRY_UNREACHABLE
    return OTHER


def require_requests(module):
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib('requests'), exception=REQUESTS_IMPORT_ERROR)


def _error_text(response):
    try:
        body = response.json()
    except ValueError:
        return (response.text or '').strip() or 'HTTP %d' % response.status_code
    if isinstance(body, dict) and body.get('error'):
        return str(body['error'])
    return json.dumps(body)


def keep_alive_value(text):
    """keep_alive as Ollama's api.Duration reads it: a bare number is seconds (negative = forever), else a Go duration."""
    if text is None:
        return None
    try:
        return int(text)
    except (TypeError, ValueError):
        pass
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


class OllamaClient:
    """Ollama's REST API at ``api_url``; ``timeout`` bounds each plain request (connect and read)."""

    def __init__(self, api_url=DEFAULT_API_URL, timeout=30):
        self.api_url = (api_url or DEFAULT_API_URL).rstrip('/')
        self.timeout = timeout
        self.session = requests.Session()
        # Ollama on localhost must not go through a proxy the environment sets for the internet.
        self.session.trust_env = False

    def close(self):
        self.session.close()

    # -- plumbing ------------------------------------------------------------------------
    def _request(self, method, path, body=None, timeout=None, stream=False):
        url = self.api_url + path
        try:
            return self.session.request(method, url, json=body, timeout=timeout or self.timeout, stream=stream)
        except requests.exceptions.ConnectionError as exc:
            raise OllamaError('no answer from Ollama at %s: %s' % (self.api_url, _reason(exc)), UNREACHABLE_SERVER) from None
        except requests.exceptions.Timeout as exc:
            raise OllamaError('Ollama at %s did not answer %s %s in time: %s' % (self.api_url, method, path, _reason(exc)),
                              UNREACHABLE_SERVER) from None
        except requests.exceptions.RequestException as exc:
            raise OllamaError('%s %s failed: %s' % (method, url, exc), OTHER) from None

    def _json(self, method, path, body=None):
        response = self._request(method, path, body)
        if response.status_code != 200:
            message = _error_text(response)
            raise OllamaError(message, classify(message, response.status_code), response.status_code)
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise OllamaError('%s %s%s: not a JSON answer (is this Ollama?): %.200s'
                              % (method, self.api_url, path, response.text), OTHER, response.status_code) from None

    # -- endpoints -----------------------------------------------------------------------
    def version(self):
        """The server's version string (``0.33.0``)."""
        return str(self._json('GET', '/api/version').get('version', ''))

    def tags(self):
        """GET /api/tags, parsed: ``{"models": [...]}``."""
        body = self._json('GET', '/api/tags')
        if not isinstance(body, dict) or not isinstance(body.get('models', []), list):
            raise OllamaError('GET %s/api/tags: unexpected answer %.200s' % (self.api_url, body), OTHER)
        return {'models': body.get('models') or []}

    def ps(self):
        """GET /api/ps, parsed: ``{"models": [...]}`` of the loaded models."""
        body = self._json('GET', '/api/ps')
        if not isinstance(body, dict):
            raise OllamaError('GET %s/api/ps: unexpected answer %.200s' % (self.api_url, body), OTHER)
        return {'models': body.get('models') or []}

    def show(self, name):
        return self._json('POST', '/api/show', {'model': name})

    def delete(self, name):
        self._json('DELETE', '/api/delete', {'model': name})

    def load(self, name, keep_alive=None, embedding=False):
        """Load a model without running it: /api/generate with no prompt, or for an embedding-only
        model (which refuses generate) /api/embed with an empty input."""
        body = {'model': name}
        value = keep_alive_value(keep_alive)
        if value is not None:
            body['keep_alive'] = value
        if embedding:
            body['input'] = []
            return self._json('POST', '/api/embed', body)
        body['stream'] = False
        return self._json('POST', '/api/generate', body)

    def embed(self, name, texts, keep_alive=None, timeout=None):
        """POST /api/embed: one vector per text, in order (Ollama L2-normalises them).

        ``timeout`` bounds this request alone: the first call may load the model, which takes
        longer than a plain read.
        """
        body = {'model': name, 'input': list(texts)}
        value = keep_alive_value(keep_alive)
        if value is not None:
            body['keep_alive'] = value
        response = self._request('POST', '/api/embed', body, timeout=timeout)
        if response.status_code != 200:
            message = _error_text(response)
            raise OllamaError(message, classify(message, response.status_code), response.status_code)
        try:
            vectors = response.json().get('embeddings')
        except (ValueError, AttributeError):
            vectors = None
        if not isinstance(vectors, list) or len(vectors) != len(body['input']):
            raise OllamaError('POST %s/api/embed: expected %d embeddings, got %.200s'
                              % (self.api_url, len(body['input']), response.text), OTHER, response.status_code)
        return vectors

    def pull(self, name, insecure=False, stall_timeout=60, connect_timeout=None):
        """POST /api/pull, streamed: yields each NDJSON line parsed, ends after ``success``.

        Raises OllamaError on an ``{"error": ...}`` line, an HTTP error, a connection that
        drops before ``success`` (kind dropped) and on no line for ``stall_timeout`` seconds
        (kind stalled: the read timeout). Abandoning the stream closes the connection, which
        Ollama treats as a cancel that keeps the partial download.
        """
        timeout = (connect_timeout or self.timeout, stall_timeout)
        try:
            response = self.session.post(self.api_url + '/api/pull', json={'model': name, 'insecure': bool(insecure), 'stream': True},
                                         timeout=timeout, stream=True)
        except requests.exceptions.ConnectTimeout as exc:
            raise OllamaError('no answer from Ollama at %s: %s' % (self.api_url, _reason(exc)), UNREACHABLE_SERVER) from None
        except requests.exceptions.ReadTimeout:
            raise OllamaError('Ollama sent nothing for %s s after the pull request' % stall_timeout, STALLED) from None
        except requests.exceptions.ConnectionError as exc:
            raise OllamaError('no answer from Ollama at %s: %s' % (self.api_url, _reason(exc)), UNREACHABLE_SERVER) from None
        with response:
            if response.status_code != 200:
                message = _error_text(response)
                raise OllamaError(message, classify(message, response.status_code), response.status_code)
            done = False
            try:
                for raw in response.iter_lines():
                    if not raw:
                        continue
                    try:
                        line = json.loads(raw)
                    except ValueError:
                        raise OllamaError('pull: not a JSON line from Ollama: %.200r' % raw, OTHER) from None
                    if not isinstance(line, dict):
                        continue
                    if line.get('error'):
                        message = str(line['error'])
                        raise OllamaError(message, classify(message))
                    yield line
                    if line.get('status') == 'success':
                        done = True
            except requests.exceptions.ConnectionError as exc:
                if _is_read_timeout(exc):
                    raise OllamaError('no progress from Ollama for %s s' % stall_timeout, STALLED) from None
                raise OllamaError('the connection to Ollama dropped during the pull: %s' % _reason(exc), DROPPED) from None
            except requests.exceptions.RequestException as exc:
                raise OllamaError('the connection to Ollama dropped during the pull: %s' % _reason(exc), DROPPED) from None
            if not done:
                raise OllamaError('the pull stream ended before "success"', DROPPED)


def _is_read_timeout(exc):
    seen = set()
    current = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ReadTimeoutError, requests.exceptions.ReadTimeout)):
            return True
        args = getattr(current, 'args', ())
        nested = args[0] if args and isinstance(args[0], BaseException) else None
        current = nested or current.__context__
    return False


def _reason(exc):
    """The innermost cause of a requests error, without urllib3's repr noise."""
    current = exc
    for _depth in range(6):
        args = getattr(current, 'args', ())
        if args and isinstance(args[0], BaseException):
            current = args[0]
            continue
        reason = getattr(current, 'reason', None)
        if isinstance(reason, BaseException):
            current = reason
            continue
        break
    text = str(current)
    # urllib3 prefixes "<urllib3.connection.HTTPConnection object at 0x...>: "
    if text.startswith('<') and '>: ' in text:
        text = text.split('>: ', 1)[1]
    return text
