# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the container modules reach dockerd: the options of module_utils/docker_client.docker_client_argument_spec()."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker daemon to talk to, for example V(unix:///var/run/docker.sock).
      - Unset uses the environment (E(DOCKER_HOST) and friends, like the C(docker) CLI), else C(unix:///var/run/docker.sock).
    type: str
  docker_timeout:
    description: Seconds one Docker API call may take.
    type: int
    default: 60
requirements:
  - docker (the Python SDK) 7.0 or later on the managed host
"""
