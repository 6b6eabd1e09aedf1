# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A command in a running container through the Docker Engine API, the API client for it, and the reads a converged container needs.

This file imports nothing but the standard library (the docker SDK only inside the functions
that need it) and nothing from Ansible, so that it also runs on its own: an action plugin sends
its source to ``python3 -`` on the host with one more line, ``host_main(json.loads(<request>))``,
and reads the one JSON line host_main prints; another sends it with ``host_inspect(...)`` instead.
Modules import it like any other module_utils.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import sys


def docker_client_argument_spec():
    """Options every container module takes to reach dockerd."""
    return dict(
        docker_host=dict(type='str'),
        docker_timeout=dict(type='int', default=60),
    )


def api_client(docker_host=None, timeout=60):
    """A docker.APIClient for docker_host, else for DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, else the socket.

    version='auto' asks dockerd for its API version (GET /version) while constructing the
    client and raises DockerException when it gets no answer.
    """
    import docker  # pylint: disable=import-outside-toplevel
    kwargs = docker.utils.kwargs_from_env()
    if docker_host:
        kwargs['base_url'] = docker_host
    kwargs.setdefault('base_url', 'unix:///var/run/docker.sock')
    return docker.APIClient(version='auto', timeout=timeout, **kwargs)


def exec_in_container(api, container, argv, stdin_bytes, environment):
    """Run ``argv`` in ``container`` with ``stdin_bytes`` on its stdin; ``(exit_code, stdout_bytes, stderr_bytes)``.

    Nothing travels on a command line but ``argv``: the input goes to the process's stdin, which
    is closed after it (SHUT_WR) so that the process sees its end.
    """
    from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter  # pylint: disable=import-outside-toplevel
    exec_id = api.exec_create(container, argv, stdin=True, stdout=True, stderr=True, tty=False,
                              environment=environment)['Id']
    sock = api.exec_start(exec_id, socket=True)
    raw = getattr(sock, '_sock', sock)
    try:
        # An index build on a large table takes as long as it takes.
        raw.settimeout(None)
        raw.sendall(stdin_bytes)
        raw.shutdown(socket.SHUT_WR)
        out, err = consume_socket_output((demux_adaptor(*frame) for frame in frames_iter(sock, False)), demux=True)
    finally:
        sock.close()
    code = api.exec_inspect(exec_id).get('ExitCode')
    return code, out or b'', err or b''


def _b64(data):
    return base64.b64encode(data).decode('ascii')


def host_main(request):
    """Run one command in a container as ``request`` asks and print the outcome as one JSON line.

    ``request``: ``docker_host``, ``timeout``, ``container``, ``argv``, ``stdin`` (base64) and
    ``environment``. Prints ``{"exit_code": .., "stdout": <base64>, "stderr": <base64>}``, or
    ``{"error": "<why>"}`` for anything that kept the command from running (no docker SDK,
    dockerd unreachable, no such container, a container that is not running): whoever sent
    the request decides what that means, so nothing here is checked twice.
    """
    try:
        api = api_client(request.get('docker_host'), request.get('timeout') or 60)
        code, out, err = exec_in_container(api, request['container'], request['argv'],
                                           base64.b64decode(request['stdin']), request.get('environment') or {})
        answer = {'exit_code': code, 'stdout': _b64(out), 'stderr': _b64(err)}
    except Exception as exc:  # pylint: disable=broad-exception-caught
        answer = {'error': '%s: %s' % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(answer) + '\n')
    sys.stdout.flush()


def _found_or_none(call):
    """What ``call`` returns, None for the SDK's NotFound (as container.inspect_container and inspect_image read it)."""
    from docker.errors import NotFound  # pylint: disable=import-outside-toplevel
    try:
        return call()
    except NotFound:
        return None


def salted_digest(salt, text):
    """SHA-256 of ``salt`` + ``text``: how a password file's text is compared without either side showing it."""
    return hashlib.sha256((salt + text).encode('utf-8')).hexdigest()


def file_facts(path, salt):
    """What pgvector_container's password-file step reads of ``path``, without the content leaving the host.

    None when it is not a regular file (os.path.isfile, so links followed); else its mode, owner,
    group and the SHA-256 of ``salt`` + its text as the module compares it (read as UTF-8 text,
    trailing newlines stripped). A file that is not UTF-8 gets ``digest`` null: the module would
    stop on it.
    """
    if not os.path.isfile(path):
        return None
    st = os.stat(path)
    try:
        with open(path, 'r', encoding='utf-8') as handle:
            text = handle.read()
        digest = salted_digest(salt, text.rstrip('\n'))
    except UnicodeDecodeError:
        digest = None
    return {'mode': st.st_mode, 'uid': st.st_uid, 'gid': st.st_gid, 'digest': digest}


def host_inspect(request):
    """Read what container.reconcile reads of a converged container, in one process, and print it as one JSON line.

    ``request``: ``docker_host``, ``timeout``, ``container`` (a name), ``image`` (the spec's
    reference), ``network`` (null for a built-in one), and optionally ``files`` (paths) with
    ``salt``. Prints ``{"container", "container_image", "image", "networks", "files", "euid"}``:
    the engine's inspect answers as the SDK returns them, null for NotFound (``container_image``
    is the image the container runs, by id); ``networks`` is the list ``networks(names=[network])``
    returns, null when not asked. Any other failure prints ``{"error": "<why>"}``.
    """
    try:
        api = api_client(request.get('docker_host'), request.get('timeout') or 60)
        found = _found_or_none(lambda: api.inspect_container(request['container']))
        running_image = (found or {}).get('Image')
        answer = {
            'container': found,
            'container_image': _found_or_none(lambda: api.inspect_image(running_image)) if running_image else None,
            'image': _found_or_none(lambda: api.inspect_image(request['image'])),
            'networks': api.networks(names=[request['network']]) if request.get('network') else None,
            'files': {path: file_facts(path, request.get('salt') or '') for path in request.get('files') or []},
            'euid': os.geteuid(),
        }
    except Exception as exc:  # pylint: disable=broad-exception-caught
        answer = {'error': '%s: %s' % (type(exc).__name__, exc)}
    sys.stdout.write(json.dumps(answer) + '\n')
    sys.stdout.flush()
