#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pgvector_container
short_description: Run PostgreSQL with pgvector in a Docker container, its password kept out of inspect and logs
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Creates, updates, starts, stops and removes one PostgreSQL + pgvector container through the Docker Engine API.
  - The password lives in a root-only file (mode C(0600)) on the host, mounted read-only into the container and named
    by E(POSTGRES_PASSWORD_FILE); it appears neither in C(docker inspect) nor in any log or result.
  - PostgreSQL settings are server arguments (C(postgres -c key=value)). A changed setting recreates the container;
    the data volume is kept.
  - Every field this module manages is compared strictly with C(docker inspect), as in
    M(ragops.gpu_stack.ollama_container); anything else about the container is left alone.
  - Bad input fails before anything is touched, naming the option; so does a published port that something else
    holds and an image the registry refuses (with the registry's message).
  - With O(state=started) the task waits until C(pg_isready) passes, up to O(wait_healthy_timeout) seconds.
options:
  name:
    description: The container's name.
    type: str
    default: pgvector
  state:
    description:
      - V(started) creates or updates the container and makes sure it runs and is healthy.
      - V(stopped) creates or updates the container and makes sure it does not run.
      - V(absent) removes the container; the data volume stays unless O(purge=true).
    type: str
    choices: [started, stopped, absent]
    default: started
  purge:
    description: With O(state=absent), also remove the data volume O(volume) and every database in it.
    type: bool
    default: false
  image:
    description: The image reference, with a tag (or digest); a reference without a tag fails.
    type: str
    default: pgvector/pgvector:pg17
  pull:
    description:
      - V(missing) pulls the image only when the host does not have it; V(always) pulls every run (the container is
        recreated only when the tag then points at another image); V(never) fails when the host does not have it.
    type: str
    choices: [missing, always, never]
    default: missing
  user:
    description: The superuser the image creates on first start (E(POSTGRES_USER)).
    type: str
    default: ragops
  database:
    description: The database the image creates on first start (E(POSTGRES_DB)); defaults to O(user).
    type: str
  password:
    description:
      - The superuser's password, written to O(password_file) (mode C(0600), owner root) when it differs.
      - When unset, O(password_file) must already exist.
      - The image reads it only when it creates the database cluster; changing it later does not change the role's
        password in an existing cluster.
    type: str
  password_file:
    description:
      - The host file that holds the password, mounted read-only at C(/run/secrets/postgres_password).
      - Defaults to C(/etc/ragops/<name>/postgres_password).
    type: path
  volume:
    description: The named volume mounted on C(/var/lib/postgresql/data). Defaults to C(<name>_data).
    type: str
  shm_size:
    description: Size of C(/dev/shm); parallel index builds need more than Docker's 64m.
    type: str
    default: 256m
  shared_buffers:
    description: The C(shared_buffers) setting, such as V(1GB).
    type: str
  work_mem:
    description: The C(work_mem) setting, such as V(64MB).
    type: str
  maintenance_work_mem:
    description: The C(maintenance_work_mem) setting, such as V(1GB) (HNSW index builds want plenty).
    type: str
  max_connections:
    description: The C(max_connections) setting.
    type: int
  settings:
    description:
      - More PostgreSQL settings, passed as C(-c key=value); booleans become V(on) and V(off).
      - A setting that a typed option also sets must have the same value.
    type: dict
  env:
    description: More environment variables, as given.
    type: dict
  publish:
    description: Publish PostgreSQL's port 5432 on O(bind_address):O(port); V(false) publishes nothing.
    type: bool
    default: true
  bind_address:
    description: The host address to publish on.
    type: str
    default: 127.0.0.1
  port:
    description: The host port to publish on.
    type: int
    default: 5432
  network:
    description:
      - A user-defined network to attach the container to (created as a bridge network when missing).
      - Unset uses Docker's default bridge.
    type: str
  memory:
    description: Memory limit, such as V(4g); unset means none.
    type: str
  cpus:
    description: CPU limit in CPUs; unset means none.
    type: float
  restart_policy:
    description: Docker's restart policy.
    type: str
    choices: ['no', always, unless-stopped, on-failure]
    default: unless-stopped
  log_max_size:
    description: json-file log rotation, the size of one log file.
    type: str
    default: 10m
  log_max_file:
    description: json-file log rotation, how many files to keep.
    type: int
    default: 3
  healthcheck:
    description: Timings of the C(pg_isready) health check.
    type: dict
    suboptions:
      interval:
        description: Time between checks.
        type: str
        default: 5s
      timeout:
        description: Time one check may take.
        type: str
        default: 5s
      retries:
        description: Failures in a row that make the container unhealthy.
        type: int
        default: 5
      start_period:
        description: Start-up time during which failures do not count.
        type: str
        default: 30s
  wait_healthy_timeout:
    description: Seconds to wait, with O(state=started), until the container is healthy; V(0) does not wait.
    type: int
    default: 180
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.docker
attributes:
  action:
    support: full
    description:
      - The action plugin of the same name validates the arguments on the controller, builds the container spec
        with the module's own code and reads the container, its image, the spec's image, the network and the
        password file in one small Python script on the host (with the docker SDK, through C(become) and the task's
        C(environment) where the task has them). Of the file it reads only its mode, owner and a salted SHA-256 of
        its text, compared with the same salted SHA-256 of O(password) on the controller; the password never
        leaves the controller. When the file needs nothing, the module's reconciler finds nothing to do and the
        container is running and healthy (or, with O(state=stopped) or O(state=absent), already as asked), it
        returns the module's result without running it. With O(pull=always), or when anything would change, the
        module runs.
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: full
    platforms: posix
notes:
  - "The health check is C(pg_isready -h 127.0.0.1 -U <user> -d <database>): over TCP, because the image's first-start
    server listens on the socket only, so the container is healthy once the real server runs with the user and
    database created."
seealso:
  - module: ragops.gpu_stack.ollama_container
"""

EXAMPLES = r"""
- name: pgvector on localhost:5432
  ragops.gpu_stack.pgvector_container:
    user: rag
    database: rag
    password: "{{ vault_pg_password }}"
    shared_buffers: 1GB
    maintenance_work_mem: 2GB
    settings:
      max_parallel_maintenance_workers: 4
      jit: false

- name: Next to Ollama on an internal network, no published port
  ragops.gpu_stack.pgvector_container:
    network: ragops
    publish: false
    password_file: /etc/ragops/pgvector/postgres_password

- name: Remove it, keeping the data
  ragops.gpu_stack.pgvector_container:
    state: absent
"""

RETURN = r"""
container:
  description: The container after the task (before it, in check mode); null when there is none.
  returned: always
  type: dict
  contains:
    id:
      description: The container id.
      type: str
    name:
      description: The container name.
      type: str
    image:
      description: The image reference it was created from.
      type: str
    image_id:
      description: The image id it runs.
      type: str
    status:
      description: Docker's status, such as V(running) or V(exited).
      type: str
    health:
      description: V(healthy), V(unhealthy), V(starting), or null.
      type: str
actions:
  description: What was done (what would be done, in check mode), in order.
  returned: always
  type: list
  elements: str
  sample: ["recreate: command changed"]
differences:
  description: Why the existing container does not match, one entry per managed field or variable.
  returned: always
  type: list
  elements: str
  sample: [command changed]
password_file:
  description: The host file holding the password.
  returned: always
  type: str
  sample: /etc/ragops/pgvector/postgres_password
diff:
  description: The managed fields before and after; the password is never in it.
  returned: when diff mode is on
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils.container import (
    ContainerError,
    InputError,
    pgvector_task,
    reconcile,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.container_task import pgvector_argument_spec as argument_spec
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import (
    connect,
    require_docker,
)


def password_file_actions(module, path, password):
    """Write or tighten the password file (root-only, 0600); the actions taken (or, in check mode, to take)."""
    actions = []
    exists = os.path.isfile(path)
    if password is not None:
        current = None
        if exists:
            with open(path, 'r', encoding='utf-8') as handle:
                current = handle.read()
        if current is None or current.rstrip('\n') != password:
            actions.append('write password file %s' % path)
            if not module.check_mode:
                directory = os.path.dirname(path)
                if not os.path.isdir(directory):
                    os.makedirs(directory, mode=0o700)
                tmp = os.path.join(directory, '.%s.%d.tmp' % (os.path.basename(path), os.getpid()))
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                    handle.write(password)
                os.rename(tmp, path)
                exists = True
    if exists:
        st = os.stat(path)
        if st.st_mode & 0o077:
            actions.append('password file %s mode 0600' % path)
            if not module.check_mode:
                os.chmod(path, 0o600)
        if os.geteuid() == 0 and (st.st_uid != 0 or st.st_gid != 0):
            actions.append('password file %s owner root' % path)
            if not module.check_mode:
                os.chown(path, 0, 0)
    return actions


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    require_docker(module)
    try:
        params, spec = pgvector_task(module.params)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    state = params['state']

    if state != 'absent' and params['password'] is None and not os.path.isfile(params['password_file']):
        module.fail_json(msg='password_file: %s does not exist; set password (it is written there with mode 0600), '
                             'or create the file, root-only, yourself' % params['password_file'])

    client = connect(module)

    def prepare():
        return password_file_actions(module, params['password_file'], params['password'])

    try:
        result = reconcile(client, spec, state=state, check_mode=module.check_mode, pull_policy=params['pull'],
                           wait_healthy_timeout=params['wait_healthy_timeout'], purge=params['purge'],
                           prepare=prepare if state != 'absent' else None)
    except InputError as exc:
        module.fail_json(msg=str(exc))
    except ContainerError as exc:
        module.fail_json(msg=str(exc), **exc.details)

    diff = result.pop('diff')
    if module._diff:
        result['diff'] = diff
    module.exit_json(password_file=params['password_file'], **result)


if __name__ == '__main__':
    main()
