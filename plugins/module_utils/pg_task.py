# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgvector_database task's interface: its options and the shape of its result.

The module and its action plugin both use these, so that the options the controller validates
and the result it returns on a converged host cannot drift from the module's own.
"""

from __future__ import annotations

from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_exec import docker_client_argument_spec


def argument_spec():
    return dict(
        docker_client_argument_spec(),
        container=dict(type='str', required=True),
        db_user=dict(type='str', default='postgres'),
        database=dict(type='str', required=True),
        owner=dict(type='str'),
        role=dict(type='str'),
        password=dict(type='str', no_log=True),
        extension=dict(type='bool', default=True),
        table=dict(type='dict', options=dict(
            name=dict(type='str', required=True),
            schema=dict(type='str', default='public'),
            dimensions=dict(type='int'),
            id_column=dict(type='str', default='id'),
            id_type=dict(type='str', choices=['bigint', 'uuid', 'text'], default='bigint'),
            embedding_column=dict(type='str', default='embedding'),
            content_column=dict(type='str', default='content'),
            metadata_column=dict(type='str', default='metadata'),
        )),
        index=dict(type='dict', options=dict(
            name=dict(type='str'),
            method=dict(type='str', choices=['hnsw'], default='hnsw'),
            distance=dict(type='str', choices=['cosine', 'l2', 'ip'], default='cosine'),
            m=dict(type='int', default=16),
            ef_construction=dict(type='int', default=64),
        )),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        force=dict(type='bool', default=False),
    )


def task_result(reconciled, spec, diff_mode):
    """``(result, warnings)`` from what pg.reconcile returned: the diff only in diff mode, and
    role, table and index only when the task names them."""
    result = dict(reconciled)
    warnings = result.pop('warnings')
    diff = result.pop('diff')
    if diff_mode:
        result['diff'] = diff
    for key in ('role', 'table', 'index'):
        if spec[key] is None:
            result.pop(key)
    return result, warnings
