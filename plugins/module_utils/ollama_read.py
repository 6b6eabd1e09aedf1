# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ollama_model action plugin reads of a host's Ollama: GET /api/tags, and GET /api/ps when asked.

This file imports nothing but the standard library and nothing from Ansible, so that it runs on
its own: the action plugin sends its source to ``python3 -`` on the host with one more line,
``host_read(json.loads(<request>))``, and reads the one JSON line host_read prints. It only
reads; the module's own client (ollama_api.py) does everything else. It is the one exception to
"one Ollama client", and a deliberate one: the host's Python may have no ``requests``, and this
runs outside Ansible's module machinery, so it is urllib, and only for these two GETs.
"""

from __future__ import annotations

import json
import sys
import urllib.request

# A converged read answers in milliseconds; a server that takes longer is the module's to report.
READ_TIMEOUT = 10


def get_json(api_url, path, timeout):
    """The parsed JSON body of GET ``api_url`` + ``path``; raises on anything but HTTP 200 with JSON."""
    url = api_url.rstrip('/') + path
    request = urllib.request.Request(url, headers={'Accept': 'application/json'})
    # No proxy, as the module's own client (trust_env=False): a proxy set for the internet must
    # never carry a request meant for the host's own Ollama.
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=timeout) as response:
        if response.status != 200:
            raise ValueError('GET %s answered HTTP %s' % (path, response.status))
        return json.loads(response.read().decode('utf-8'))


def host_read(request):
    """Read the installed (and, when ``request['ps']``, the loaded) models and print them as one JSON line.

    ``request``: ``api_url``, ``ps`` (bool), ``timeout`` (seconds, optional). Prints
    ``{"tags": <GET /api/tags>, "ps": <GET /api/ps or null>}`` as the server sent them, or
    ``{"error": "<why>"}`` for anything else (no answer, an HTTP error, a body that is not JSON):
    whoever sent the request decides what that means.
    """
    timeout = request.get('timeout') or READ_TIMEOUT
    try:
        answer = {'tags': get_json(request['api_url'], '/api/tags', timeout), 'ps': None}
        if request.get('ps'):
            answer['ps'] = get_json(request['api_url'], '/api/ps', timeout)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        answer = {'error': '%s: %s' % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(answer) + '\n')
    sys.stdout.flush()
