#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: pgvector_database
short_description: Databases, roles, the vector extension, embedding tables and HNSW indexes in a pgvector container
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Administers PostgreSQL with pgvector inside a running container through C(docker exec) and
    C(psql), so the host needs no PostgreSQL driver, no published port and no password. C(psql)
    runs as O(db_user) over the container's local socket, which the official postgres image (and
    so C(pgvector/pgvector)) trusts.
  - SQL travels on psql's standard input, never on a command line. Reads run in read-only
    sessions; in check mode nothing else runs.
  - Ensures a database, optionally a login role with a password, the C(vector) extension, a table
    with a C(vector(N)) column and an HNSW index on it.
  - A changed O(password) is applied with C(ALTER ROLE). The image reads C(POSTGRES_PASSWORD) only
    when it creates the data directory, so changing it later does nothing; this module does what
    the image does not. PostgreSQL keeps only a SCRAM-SHA-256 verifier of the password; the module
    checks the candidate against that verifier locally and, when it differs, sends a verifier it
    computed itself, so the clear text reaches neither the server, its log, nor any command line.
  - Input is checked before anything runs. Names are always quoted, so they keep their case.
  - A converged server is answered on the controller after one read; see the C(action)
    attribute. The module itself runs on the host only when something changes or the answer is
    not certain.
options:
  container:
    description:
      - Name or ID of the running PostgreSQL container.
    type: str
    required: true
  db_user:
    description:
      - The superuser psql runs as inside the container, the image's C(POSTGRES_USER).
    type: str
    default: postgres
  database:
    description:
      - The database to ensure, or to work in.
    type: str
    required: true
  owner:
    description:
      - Owner of the database. When set, an existing database gets this owner.
      - Unset, a new database is owned by O(role), or by O(db_user) when O(role) is unset, and an
        existing database keeps its owner.
      - The role must exist, or be O(role).
      - Tables this module creates are owned by the database's owner.
    type: str
  role:
    description:
      - A login role to ensure (created with C(LOGIN); an existing role without C(LOGIN) gets it).
      - The role is never dropped by this module.
    type: str
  password:
    description:
      - The password of O(role). When the role's stored verifier does not match, the password is
        set, as a SCRAM-SHA-256 verifier computed by the module (4096 iterations, random salt).
      - Unset leaves the role's password as it is.
    type: str
  extension:
    description:
      - Ensure the C(vector) extension in O(database) (C(CREATE EXTENSION IF NOT EXISTS vector)).
      - V(false) leaves extensions as they are; it never drops the extension.
    type: bool
    default: true
  table:
    description:
      - A table for embeddings. With O(state=present) it is created when missing; an existing
        table gets missing columns added. A different vector length is an error, never a rewrite.
    type: dict
    suboptions:
      name:
        description: The table's name.
        type: str
        required: true
      schema:
        description: Its schema, created (owned by the database's owner) when missing.
        type: str
        default: public
      dimensions:
        description:
          - Length of the embedding vectors, 1 to 16000 (for example V(768) for nomic-embed-text).
          - At most 2000 when O(index) is set, the limit of HNSW indexes on C(vector).
          - Required with O(state=present).
        type: int
      id_column:
        description: The primary key column.
        type: str
        default: id
      id_type:
        description:
          - V(bigint) is an identity column, V(uuid) defaults to C(gen_random_uuid()), V(text) has no default.
        type: str
        choices: [bigint, uuid, text]
        default: bigint
      embedding_column:
        description: The C(vector(N)) column.
        type: str
        default: embedding
      content_column:
        description: A C(text) column for the embedded text; an empty string leaves it out.
        type: str
        default: content
      metadata_column:
        description: A C(jsonb) column (not null, default C({})); an empty string leaves it out.
        type: str
        default: metadata
  index:
    description:
      - An HNSW index on the embedding column of O(table), which it needs.
      - An existing index with other settings is dropped and built again, in one transaction.
    type: dict
    suboptions:
      name:
        description: The index's name, in the table's schema. Default C(<table>_<embedding_column>_hnsw_idx).
        type: str
      method:
        description: The index method.
        type: str
        choices: [hnsw]
        default: hnsw
      distance:
        description:
          - The distance queries will use; C(vector_cosine_ops), C(vector_l2_ops) or C(vector_ip_ops).
        type: str
        choices: [cosine, l2, ip]
        default: cosine
      m:
        description: Connections per layer, 2 to 100.
        type: int
        default: 16
      ef_construction:
        description: Candidate list size while building, 4 to 1000 and at least twice O(index.m).
        type: int
        default: 64
  state:
    description:
      - V(present) ensures everything given.
      - V(absent) drops the O(index) when it is given; otherwise the O(table) when it is given,
        refusing a table with rows unless O(force=true); otherwise the database, refusing one that
        has any table unless O(force=true). Roles and the extension are never dropped.
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), drop a table with rows, or a database with tables (closing the
        connections to it, C(DROP DATABASE ... WITH (FORCE))).
    type: bool
    default: false
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
  - ragops.gpu_stack.docker
attributes:
  action:
    support: full
    description:
      - The action plugin of the same name validates the arguments on the controller and reads
        the server's state with the module's own read (one read-only psql session in the
        container, run by a small Python script on the host with the docker SDK, through
        C(become) and the task's C(environment) where the task has them). It plans with the
        module's own code; when the plan has no action and no warning it returns the result
        the module would return, without running it. The password never leaves the controller;
        the role's stored SCRAM verifier is read and checked there.
      - Otherwise (a change, a warning, bad input, a failed read, no Python interpreter known
        for the host yet, a connection without pipelining, C(async)) the module runs on the host
        and its result is returned as it is.
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    support: N/A
    platforms: posix
requirements:
  - A running container of an image with the official postgres image's contract and pgvector,
    such as C(pgvector/pgvector:pg17).
notes:
  - The HNSW index is built with C(CREATE INDEX), which blocks writes to the table while it runs.
  - The diff and the results never hold a password or verifier; a password change shows as
    C(password_changed) in the role.
seealso:
  - name: pgvector
    description: Vector columns, HNSW options and distance operators.
    link: https://github.com/pgvector/pgvector
"""

EXAMPLES = r"""
- name: A database for RAG with its own login role, the extension and an indexed table
  ragops.gpu_stack.pgvector_database:
    container: pgvector
    database: rag
    role: rag
    password: "{{ rag_db_password }}"
    table:
      name: chunks
      dimensions: 768
    index:
      distance: cosine
      m: 16
      ef_construction: 64
  register: rag_db

- name: Rotate the application password (applied with ALTER ROLE; POSTGRES_PASSWORD is not read again)
  ragops.gpu_stack.pgvector_database:
    container: pgvector
    database: rag
    role: rag
    password: "{{ new_rag_db_password }}"

- name: Drop the index only
  ragops.gpu_stack.pgvector_database:
    container: pgvector
    database: rag
    table:
      name: chunks
    index:
      name: chunks_embedding_hnsw_idx
    state: absent
"""

RETURN = r"""
actions:
  description: What was done (or would be, in check mode), one sentence each; never SQL with secrets.
  returned: always
  type: list
  elements: str
  sample: ["create role rag", "create database rag owned by rag", "create extension vector 0.8.0"]
extension_version:
  description: The version of the C(vector) extension in the database after the task, V(null) when none.
  returned: always
  type: str
  sample: 0.8.0
database:
  description: The database after the task, V(null) when it does not exist.
  returned: always
  type: dict
  sample: {"name": "rag", "owner": "rag"}
role:
  description:
    - The role after the task; C(password) is the kind of password stored (V(scram-sha-256), V(md5) or V(null)).
    - C(password_changed) is present and true when the task set the password.
  returned: when O(role) is set
  type: dict
  sample: {"name": "rag", "login": true, "password": "scram-sha-256", "password_changed": true}
table:
  description: The table after the task with its columns and their types, V(null) when it does not exist.
  returned: when O(table) is set
  type: dict
  sample: {"schema": "public", "name": "chunks", "owner": "rag",
           "columns": {"id": "bigint", "content": "text", "metadata": "jsonb", "embedding": "vector(768)"}}
index:
  description: The index after the task, V(null) when it does not exist.
  returned: when O(index) is set
  type: dict
  sample: {"name": "chunks_embedding_hnsw_idx", "table": "chunks", "method": "hnsw", "column": "embedding",
           "distance": "cosine", "opclass": "vector_cosine_ops", "m": 16, "ef_construction": 64}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_client import DockerException, connect
from ansible_collections.ragops.gpu_stack.plugins.module_utils.pg import (
    DockerPsql,
    PgError,
    SpecError,
    build_spec,
    reconcile,
)
from ansible_collections.ragops.gpu_stack.plugins.module_utils.pg_task import argument_spec, task_result


def open_psql(module):
    """psql in the container, through the Docker Engine API (connect() fails clearly when the
    SDK is missing or dockerd does not answer)."""
    return DockerPsql(connect(module), module.params['container'], module.params['db_user'])


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        spec = build_spec(module.params)
    except SpecError as exc:
        module.fail_json(msg=str(exc))

    psql = open_psql(module)
    try:
        psql.check_running()
        result = reconcile(psql, spec, module.check_mode)
    except (SpecError, PgError) as exc:
        module.fail_json(msg=str(exc))
    except DockerException as exc:
        module.fail_json(msg='Docker: %s' % exc)

    result, warnings = task_result(result, spec, module._diff)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
