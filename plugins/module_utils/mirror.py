# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Can this host reach the mirrors the inventory points it at? One probe per URL, all at once.

A probe is one HTTP request with a short timeout, made from the host (the module runs there):
``file`` wants the file (2xx or 3xx: a signing key, a repository's Release or repomd.xml),
``server`` wants any HTTP answer (the server is there, whatever the path gives), ``registry``
wants a Docker registry's ``/v2/`` (200, or 401 from one that asks for a login), and ``image``
probes the registry an image reference names (``mirror.example.internal/ollama/ollama:0.33.0``),
over plain HTTP when that registry is one of dockerd's insecure registries, as dockerd would.
Standard library and ansible-core's urls only, so it runs on any managed host.
"""

from __future__ import annotations

import concurrent.futures
import socket
import ssl
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import open_url

KINDS = ('file', 'server', 'registry', 'image')
# HEAD is refused by some servers that serve GET (S3-style stores, some proxies): ask again with GET.
_HEAD_REFUSED = (405, 501)


class MirrorError(ValueError):
    """A target that cannot be probed as given (a malformed URL, an image with no registry)."""


def image_registry(image):
    """The registry host[:port] an image reference names, or None for a Docker Hub name.

    Docker's rule (distribution/reference): the first path component is a registry when it holds
    a ``.`` or a ``:``, or is ``localhost``; else the name is Docker Hub's (``ollama/ollama``).
    """
    if not image or '/' not in image:
        return None
    first = image.split('/', 1)[0]
    if '.' in first or ':' in first or first == 'localhost':
        return first
    return None


def probe_url(target, insecure_registries=()):
    """The URL a target's probe requests: ``<url>/v2/`` for a registry, the image's registry's ``/v2/``."""
    kind, url = target['kind'], target['url']
    if kind == 'image':
        registry = image_registry(url)
        if registry is None:
            raise MirrorError('%s names no registry (a Docker Hub name); give a registry mirror as kind registry' % url)
        scheme = 'http' if registry in insecure_registries else 'https'
        return '%s://%s/v2/' % (scheme, registry)
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.netloc:
        raise MirrorError('%s is not an http:// or https:// URL' % url)
    if kind == 'registry':
        return url.rstrip('/') + '/v2/'
    return url


def describe_error(exc, timeout):
    """A short, human reason for a failed request: what a user would search for."""
    reason = getattr(exc, 'reason', exc) if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return 'no answer within %ss' % timeout
    if isinstance(reason, socket.gaierror):
        return 'the name does not resolve: %s' % (reason.strerror or reason)
    if isinstance(reason, ConnectionRefusedError):
        return 'connection refused'
    if isinstance(reason, ssl.SSLCertVerificationError):
        return 'TLS certificate not trusted: %s' % (reason.verify_message or reason)
    if isinstance(reason, ssl.SSLError):
        return 'TLS error: %s' % (getattr(reason, 'reason', None) or reason)
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return to_text(reason) or type(reason).__name__


def _answer_ok(kind, status):
    if kind == 'server':
        return True
    if kind in ('registry', 'image'):
        # 401: a registry that wants a login answered; dockerd logs in with its own credentials.
        return status in (200, 401)
    return 200 <= status < 400


def check(target, timeout=5, validate_certs=True, ca_path=None, insecure_registries=(), opener=open_url):
    """Probe one target ({what, url, kind, fix}); returns its result, never raises."""
    result = dict(what=target['what'], url=target['url'], kind=target['kind'], probe_url=None,
                  ok=False, status=None, error=None, fix=target.get('fix'))
    try:
        url = result['probe_url'] = probe_url(target, insecure_registries)
    except MirrorError as exc:
        result['error'] = str(exc)
        return result
    methods = ['GET'] if target['kind'] in ('registry', 'image') else ['HEAD', 'GET']
    for method in methods:
        try:
            response = opener(url, method=method, timeout=timeout, validate_certs=validate_certs, ca_path=ca_path,
                              follow_redirects='all', http_agent='ragops.gpu_stack-mirror_check')
        except HTTPError as exc:
            status = exc.code
            exc.close()
            if method == 'HEAD' and status in _HEAD_REFUSED:
                continue
            result['status'] = status
            result['ok'] = _answer_ok(target['kind'], status)
            if not result['ok']:
                result['error'] = ('HTTP %s %s' % (status, to_text(exc.reason or ''))).rstrip()
            return result
        except Exception as exc:  # pylint: disable=broad-except  # every network error is an answer here
            result['error'] = describe_error(exc, timeout)
            return result
        result['status'] = response.getcode()
        response.close()
        result['ok'] = _answer_ok(target['kind'], result['status'])
        if not result['ok']:
            result['error'] = 'HTTP %s' % result['status']
        return result
    return result


def check_all(targets, **kwargs):
    """Every target probed concurrently (the slowest one sets the time, not their sum), results in order."""
    if not targets:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        return list(pool.map(lambda target: check(target, **kwargs), targets))


def failure_message(result):
    """``cannot reach <what> at <url> (<error>): <fix>``: the line preflight fails a host with."""
    message = 'cannot reach %s at %s (%s)' % (result['what'], result['probe_url'] or result['url'], result['error'])
    return '%s: %s' % (message, result['fix']) if result.get('fix') else message
