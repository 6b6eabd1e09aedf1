# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The docker SDK, imported once and guarded, and the low-level API client our modules use.

Modules call ``require_docker(module)`` first, which fails with ``missing_required_lib('docker')``
when the SDK is absent. The error classes are always importable: without the SDK they are
stand-ins that nothing raises.
"""

from __future__ import annotations

import traceback

try:
    # Imported here only to know whether the SDK is there; docker_exec imports what it uses.
    import docker  # pylint: disable=unused-import
    from docker.errors import APIError, DockerException, NotFound  # pylint: disable=unused-import
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError:
    docker = None
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = traceback.format_exc()

    class DockerException(Exception):
        """Stand-in for docker.errors.DockerException."""

    class APIError(DockerException):
        """Stand-in for docker.errors.APIError."""

        def __init__(self, message, response=None, explanation=None):
            super().__init__(message)
            self.response = response
            self.explanation = explanation

    class NotFound(APIError):
        """Stand-in for docker.errors.NotFound."""

from ansible.module_utils.basic import missing_required_lib

# One copy of each, in the file an action plugin can also run on the host by itself.
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_exec import (  # pylint: disable=unused-import
    api_client as get_api_client,
    docker_client_argument_spec,
)


def require_docker(module):
    if not HAS_DOCKER:
        module.fail_json(msg=missing_required_lib('docker'), exception=DOCKER_IMPORT_ERROR)


def api_error_text(exc):
    """The daemon's or registry's own words for an APIError, without the HTTP preamble."""
    explanation = getattr(exc, 'explanation', None)
    if explanation:
        if isinstance(explanation, bytes):
            explanation = explanation.decode('utf-8', 'replace')
        return str(explanation).strip()
    return str(exc).strip()


def connect(module):
    """The API client for the module's docker_host / docker_timeout, or fail_json with why dockerd cannot be reached."""
    require_docker(module)
    try:
        # version='auto' asks dockerd for its API version (GET /version) while constructing the
        # client, and raises DockerException when it gets no answer: a ping after it would only
        # add a round trip to every module call.
        client = get_api_client(module.params.get('docker_host'), module.params.get('docker_timeout') or 60)
    except DockerException as exc:
        module.fail_json(msg='docker_host: cannot reach dockerd at %s: %s'
                         % (module.params.get('docker_host') or 'DOCKER_HOST or unix:///var/run/docker.sock', exc))
    return client
