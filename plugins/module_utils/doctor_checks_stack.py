# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The doctor's decisions about Docker, the two containers, the models, pgvector and the RAG round trip.

Pure functions from what doctor.py read to checks (doctor_record.make_check), plus the SQL of the
pgvector session and the reading of its answers. Nothing here talks to a host.
"""

from __future__ import annotations

import datetime

from ansible_collections.ragops.gpu_stack.plugins.module_utils import model_name, pg
from ansible_collections.ragops.gpu_stack.plugins.module_utils.doctor_record import FAIL, OK, WARN, make_check

SERVICES_FIX = 'ansible-playbook site.yml --tags services'
MODELS_FIX = 'ansible-playbook site.yml --tags models'
LOOPBACK = ('127.0.0.1', '::1', 'localhost')
ALL_INTERFACES = ('', '0.0.0.0', '::')

# Four sentences on unrelated subjects: any embedding model places each nearest to itself.
ROUND_TRIP_SENTENCES = (
    'The cat sleeps on the warm windowsill all afternoon.',
    'Quarterly revenue grew by twelve percent after the merger.',
    'Photosynthesis turns sunlight, water and carbon dioxide into sugar.',
    'The night train to Vienna leaves platform four at nine.',
)
ROUND_TRIP_QUERY = 2
ROUND_TRIP_TABLE = 'ragops_doctor_round_trip'


def check_docker(error, info):
    if error:
        return make_check('docker', FAIL, 'dockerd does not answer: %s' % error,
                          cause='Docker is not installed, not running, or this user cannot reach its socket',
                          fix='ansible-playbook site.yml --tags docker, or systemctl start docker')
    return make_check('docker', OK, 'Docker %s answers (storage %s, cgroup driver %s)'
                      % (info.get('ServerVersion'), info.get('Driver'), info.get('CgroupDriver')))


def check_daemon_json(path, error, data, default_runtime_problem):
    """daemon.json parsed (``data``, None when absent) or the reader's ``error``."""
    if error:
        return make_check('daemon_json', FAIL, error, cause='daemon.json was edited by hand or by another tool',
                          fix='fix the JSON (python3 -m json.tool %s), then ansible-playbook site.yml --tags docker' % path)
    if data is None:
        return make_check('daemon_json', OK, '%s is absent: dockerd runs with its defaults' % path)
    if default_runtime_problem:
        return make_check('daemon_json', FAIL, default_runtime_problem, cause='a runtime was removed but stays the default',
                          fix='register the runtime again (--tags gpu) or remove default-runtime')
    return make_check('daemon_json', OK, '%s is valid (%s)' % (path, ', '.join(sorted(data)) or 'empty'))


def container_status(inspect):
    """A few words on a container's state, for messages."""
    state = (inspect or {}).get('State') or {}
    words = [state.get('Status') or 'unknown']
    if state.get('Health'):
        words.append(state['Health'].get('Status') or '')
    return ', '.join(w for w in words if w)


def check_container(check_id, name, inspect, log_tail, what):
    """One service container: exists, runs, healthy; restarts, last exit code and OOM kill."""
    if inspect is None:
        return make_check(check_id, FAIL, 'container %s does not exist; %s not checked' % (name, what),
                          cause='the services layer has not run on this host, or the container was removed',
                          fix=SERVICES_FIX)
    state = inspect.get('State') or {}
    restarts = int(inspect.get('RestartCount') or 0)
    exit_code = state.get('ExitCode')
    tail = ('; last log lines: %s' % ' | '.join(log_tail[-3:])) if log_tail else ''
    if state.get('OOMKilled'):
        return make_check(check_id, FAIL, '%s was killed for lack of memory (OOM, exit code %s, %d restarts)%s'
                          % (name, exit_code, restarts, tail),
                          cause='the container needs more memory than its limit or the host has',
                          fix='raise the memory limit (ollama_memory_limit / pgvector_memory_limit), use smaller models, '
                          'or OLLAMA_MAX_LOADED_MODELS=1')
    if state.get('Restarting'):
        return make_check(check_id, FAIL, '%s is in a restart loop (restarted %d times, last exit code %s)%s'
                          % (name, restarts, exit_code, tail), cause='its process exits right after it starts',
                          fix='docker logs %s; then %s' % (name, SERVICES_FIX))
    if not state.get('Running'):
        cause = ('it was stopped cleanly (docker stop, or a host restart with a restart policy that does not start it)'
                 if exit_code == 0 else 'its process exited with code %s' % exit_code)
        return make_check(check_id, FAIL, '%s is %s (exit code %s, finished %s); %s not checked%s'
                          % (name, state.get('Status') or 'not running', exit_code, state.get('FinishedAt'), what, tail),
                          cause=cause, fix='docker start %s, or %s' % (name, SERVICES_FIX))
    health = (state.get('Health') or {}).get('Status')
    if health == 'unhealthy':
        logs = [entry.get('Output', '').strip() for entry in (state.get('Health') or {}).get('Log') or []]
        return make_check(check_id, FAIL, '%s runs but is unhealthy: %s' % (name, (logs[-1] if logs else 'no output')[:200]),
                          cause='its health check fails', fix='docker logs %s' % name)
    if restarts:
        return make_check(check_id, WARN, '%s runs (%s) but restarted %d times' % (name, health or 'no health check', restarts),
                          cause='its process crashed and Docker restarted it', fix='docker logs %s' % name)
    if health == 'starting':
        return make_check(check_id, WARN, '%s runs, its health check still starting' % name,
                          cause='it was just (re)started', fix='wait, then re-run the doctor')
    started = (state.get('StartedAt') or '')[:19]
    return make_check(check_id, OK, '%s runs (%s, started %s, no restart)' % (name, health or 'no health check', started))


def check_not_serving(check_id, name, inspect, wanted):
    """A container the inventory wants stopped or absent: is it so? (Nothing that needs it is checked.)"""
    running = bool(inspect and (inspect.get('State') or {}).get('Running'))
    if wanted == 'absent' and inspect is None or wanted == 'stopped' and inspect is not None and not running:
        return make_check(check_id, OK, '%s is %s, as the inventory says; nothing that needs it is checked'
                          % (name, 'absent' if inspect is None else 'stopped'))
    return make_check(check_id, FAIL, '%s is %s but the inventory says %s' % (name, container_status(inspect) if inspect else 'absent', wanted),
                      cause='the container was started, stopped or removed outside the services layer', fix=SERVICES_FIX)


def started_epoch(inspect):
    """State.StartedAt as whole Unix seconds (for docker logs ``since``), None when unknown."""
    text = ((inspect or {}).get('State') or {}).get('StartedAt') or ''
    if not text or text.startswith('0001-'):
        return None
    try:
        moment = datetime.datetime.strptime(text[:19], '%Y-%m-%dT%H:%M:%S').replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None
    return int(moment.timestamp())


def published(inspect):
    """[(container_port, host_ip, host_port)] that a container publishes, as the engine bound them."""
    ports = ((inspect or {}).get('NetworkSettings') or {}).get('Ports') or {}
    result = []
    for container_port, bindings in sorted(ports.items()):
        for binding in bindings or []:
            result.append((container_port, binding.get('HostIp') or '', str(binding.get('HostPort') or '')))
    return result


def _allowed(service):
    if not service.get('publish'):
        return set()
    address = service.get('bind_address') or '127.0.0.1'
    port = str(service.get('port'))
    allowed = {(address, port)}
    if address in ALL_INTERFACES:
        allowed |= {(a, port) for a in ALL_INTERFACES}
    return allowed


def check_exposure(services):
    """Each container's published ports beyond loopback against what the inventory asked for.

    ``services``: [{label, name, inspect, publish, bind_address, port, variable}]; containers
    that do not exist are left out.
    """
    problems, shown = [], []
    for service in services:
        inspect = service.get('inspect')
        if inspect is None:
            continue
        if ((inspect.get('HostConfig') or {}).get('NetworkMode') or '') == 'host':
            problems.append('%s runs on the host network: every port it listens on is exposed' % service['name'])
            continue
        allowed = _allowed(service)
        for container_port, host_ip, host_port in published(inspect):
            where = '%s:%s' % (host_ip or '0.0.0.0', host_port)
            shown.append('%s %s' % (service['name'], where))
            if host_ip in LOOPBACK or host_ip.startswith('127.') or (host_ip, host_port) in allowed:
                continue
            problems.append('%s publishes %s on %s%s, which the inventory did not ask for (%s_bind_address %s, %s_publish %s)'
                            % (service['name'], container_port, where, ' (all interfaces)' if host_ip in ALL_INTERFACES else '',
                               service['variable'], service.get('bind_address'), service['variable'],
                               str(bool(service.get('publish'))).lower()))
    if problems:
        return make_check('exposure', FAIL, '; '.join(problems),
                          cause='the container was created by hand or by another tool, or the inventory changed since: '
                          'Ollama has no authentication and pgvector holds the data',
                          fix='%s recreates the containers with the inventory\'s bindings; set the *_bind_address '
                          'variables if the exposure is wanted' % SERVICES_FIX)
    return make_check('exposure', OK, 'published as the inventory asks: %s' % (', '.join(shown) or 'nothing published'))


def api_url_for(service, inspect):
    """The Ollama API address the doctor uses: the given one, else the published port (loopback when bound to
    all interfaces), else the container's address on its network."""
    if service.get('api_url'):
        return service['api_url'].rstrip('/')
    port = service.get('port') or 11434
    if service.get('publish', True):
        address = service.get('bind_address') or '127.0.0.1'
        if address in ('', '0.0.0.0'):
            address = '127.0.0.1'
        elif address == '::':
            address = '::1'
        return 'http://%s:%s' % ('[%s]' % address if ':' in address else address, port)
    for network in (((inspect or {}).get('NetworkSettings') or {}).get('Networks') or {}).values():
        if network.get('IPAddress'):
            return 'http://%s:11434' % network['IPAddress']
    return None


def check_ollama_api(url, version, error):
    if error:
        return make_check('ollama_api', FAIL, 'Ollama does not answer at %s: %s' % (url, error),
                          cause='the server is down, or not published where the inventory says (ollama_port, '
                          'ollama_bind_address)', fix=SERVICES_FIX)
    return make_check('ollama_api', OK, 'Ollama %s answers at %s' % (version, url))


def check_models(desired, installed):
    """The models the inventory lists (state present or latest) against /api/tags.

    ``desired``: ollama_models.Desired entries; ``installed``: ollama_models.installed_index().
    """
    wanted = [d for d in desired if d.state != 'absent']
    missing = [d.name.shortest for d in wanted if d.name.key not in installed]
    if missing:
        return make_check('ollama_models', FAIL, 'not installed: %s' % ', '.join(missing),
                          cause='the models layer has not run since, or a pull failed', fix=MODELS_FIX)
    return make_check('ollama_models', OK, '%d model(s) installed: %s'
                      % (len(wanted), ', '.join(d.name.shortest for d in wanted) or 'none listed'))


def embedding_length(show):
    """The model's vector size from /api/show's model_info (``<arch>.embedding_length``)."""
    for key, value in ((show or {}).get('model_info') or {}).items():
        if key.endswith('.embedding_length') and isinstance(value, int):
            return value
    return None


def is_embedding_model(show):
    capabilities = (show or {}).get('capabilities') or []
    return 'embedding' in capabilities and 'completion' not in capabilities


def embedding_candidates(desired, given):
    """Model names to try as the embedding model: the one given, else the preloaded entries first."""
    if given:
        return [model_name.normalise(given)]
    wanted = [d for d in desired if d.state != 'absent']
    return [d.name.shortest for d in sorted(wanted, key=lambda d: not d.preload)]


def check_embedding_model(name, show, error, dimensions):
    if error or not name:
        return make_check('embedding_model', FAIL, error or 'no embedding model among the listed models',
                          cause='RAG needs an embedding model, and none is installed and listed',
                          fix='list one in ollama_models_list (nomic-embed-text, its default) and run --tags models')
    if not dimensions:
        return make_check('embedding_model', WARN, '%s shows no embedding_length in /api/show' % name,
                          cause='not an embedding model, or an unusual model file', fix='set an embedding model')
    return make_check('embedding_model', OK, '%s (%d dimensions, capabilities %s)'
                      % (name, dimensions, ', '.join((show or {}).get('capabilities') or []) or 'unknown'))


# ----------------------------------------------------------------------------- pgvector

STATE_ANSWER = 'state'
ROUND_TRIP_ANSWER = 'round_trip'


def vector_literal(vector):
    return "'[%s]'" % ','.join(repr(float(v)) for v in vector)


def state_sql(table):
    """The extension, its available version and the configured table's columns, in the target database."""
    schema = pg.quote_literal((table or {}).get('schema') or 'public')
    name = pg.quote_literal((table or {}).get('name') or '')
    return """SELECT json_build_object(
  'extension', (SELECT extversion FROM pg_extension WHERE extname = %(ext)s),
  'available', (SELECT default_version FROM pg_available_extensions WHERE name = %(ext)s),
  'server_version', current_setting('server_version'),
  'columns', (SELECT json_object_agg(a.attname, format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum)
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = %(schema)s AND c.relname = %(name)s AND c.relkind IN ('r', 'p')
                AND a.attnum > 0 AND NOT a.attisdropped)
);
""" % dict(ext=pg.quote_literal(pg.EXTENSION), schema=schema, name=name)


def session_sql(table, vectors):
    """One psql session: the state read, then (when the extension is there and ``vectors`` are given) the RAG
    round trip.

    The round trip writes only to a TEMP table, created inside a transaction that ends in ROLLBACK:
    a temporary table lives in the session's own schema, so no user's table or row is ever
    touched, and an uncommitted transaction leaves nothing behind. If the run dies half way (the
    module killed, psql stopped by ON_ERROR_STOP, the connection lost), PostgreSQL rolls the
    transaction back and drops the session's temporary tables itself: nothing persists.
    """
    parts = ['\\echo %s%s\n' % (pg.ANSWER_MARKER, STATE_ANSWER), state_sql(table)]
    if vectors:
        dims = len(vectors[0])
        rows = ',\n'.join('(%d, %s, %s)' % (index, pg.quote_literal(text), vector_literal(vector))
                          for index, (text, vector) in enumerate(zip(ROUND_TRIP_SENTENCES, vectors)))
        parts += [
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s) AS ragops_has_vector \\gset\n"
            % pg.quote_literal(pg.EXTENSION),
            '\\if :ragops_has_vector\n',
            'BEGIN;\n',
            'CREATE TEMP TABLE %s (id int PRIMARY KEY, content text NOT NULL, embedding vector(%d) NOT NULL) ON COMMIT DROP;\n'
            % (ROUND_TRIP_TABLE, dims),
            'INSERT INTO %s (id, content, embedding) VALUES\n%s;\n' % (ROUND_TRIP_TABLE, rows),
            '\\echo %s%s\n' % (pg.ANSWER_MARKER, ROUND_TRIP_ANSWER),
            "SELECT coalesce(json_agg(json_build_object('id', id, 'distance', distance) ORDER BY distance, id), '[]')\n"
            "FROM (SELECT id, embedding <=> %s::vector AS distance FROM %s) AS nearest;\n"
            % (vector_literal(vectors[ROUND_TRIP_QUERY]), ROUND_TRIP_TABLE),
            'ROLLBACK;\n',
            '\\endif\n',
        ]
    return ''.join(parts)


def check_pgvector_extension(state, error, database):
    if error:
        return make_check('pgvector_extension', FAIL, 'cannot read database %s: %s' % (database, error),
                          cause='the database or its role is missing, or PostgreSQL refuses the connection',
                          fix=SERVICES_FIX + ' (pgvector_database, pgvector_user)')
    version = state.get('extension')
    if not version:
        return make_check('pgvector_extension', FAIL, 'the vector extension is not installed in %s (available: %s)'
                          % (database, state.get('available') or 'none'),
                          cause='pgvector_extension is false, or the image has no pgvector',
                          fix='pgvector_extension: true, then ' + SERVICES_FIX)
    if state.get('available') and state['available'] != version:
        return make_check('pgvector_extension', WARN, 'vector %s in %s (PostgreSQL %s); the image ships %s'
                          % (version, database, state.get('server_version'), state['available']),
                          cause='the image was upgraded but the extension was not',
                          fix='ALTER EXTENSION vector UPDATE; in %s' % database)
    return make_check('pgvector_extension', OK, 'vector %s in %s (PostgreSQL %s)' % (version, database, state.get('server_version')))


def check_pgvector_dimension(table, columns, model, dimensions):
    """The configured embeddings table's vector size against the embedding model's."""
    where = '%s.%s' % (table.get('schema') or 'public', table['name'])
    column = table.get('embedding_column') or 'embedding'
    if not columns:
        return make_check('pgvector_dimension', FAIL, 'table %s does not exist' % where,
                          cause='the services layer did not create it (pgvector_table), or it was dropped',
                          fix=SERVICES_FIX)
    if column not in columns:
        return make_check('pgvector_dimension', FAIL, 'table %s has no column %s' % (where, column),
                          cause='the table was made by another tool', fix='set pgvector_table.embedding_column')
    size = pg.vector_dimensions(columns[column])
    if size is None:
        return make_check('pgvector_dimension', WARN, '%s.%s is %s, without a dimension' % (where, column, columns[column]),
                          cause='an unsized vector column cannot carry an HNSW index', fix='declare vector(N)')
    if not dimensions:
        return make_check('pgvector_dimension', WARN, '%s.%s is vector(%d); the embedding model\'s size is unknown'
                          % (where, column, size), cause='see embedding_model', fix='see embedding_model')
    if size != dimensions:
        return make_check('pgvector_dimension', FAIL, '%s.%s is vector(%d) but %s makes %d-dimensional embeddings'
                          % (where, column, size, model, dimensions),
                          cause='the table was made for another embedding model',
                          fix='use an embedding model of %d dimensions, or a new table with pgvector_table.dimensions: %d'
                          % (size, dimensions))
    return make_check('pgvector_dimension', OK, '%s.%s is vector(%d), as %s makes' % (where, column, size, model))


def check_round_trip(model, vectors, embed_error, answers, pg_error, database):
    """Embedded, stored, and the query sentence's own row nearest: RAG works end to end."""
    if embed_error:
        return make_check('rag_round_trip', FAIL, 'embedding with %s failed: %s' % (model, embed_error),
                          cause='the embedding model cannot run (see embedding_model and ollama_api)', fix=MODELS_FIX)
    if pg_error:
        return make_check('rag_round_trip', FAIL, 'pgvector refused the round trip: %s' % pg_error,
                          cause='see pgvector_extension', fix=SERVICES_FIX)
    sizes = sorted(set(len(v) for v in vectors or []))
    if len(sizes) != 1 or not sizes[0]:
        return make_check('rag_round_trip', FAIL, '%s returned vectors of sizes %s' % (model, sizes),
                          cause='not an embedding model', fix='set an embedding model')
    if ROUND_TRIP_ANSWER not in (answers or {}):
        return make_check('rag_round_trip', FAIL, 'the round trip did not run: the vector extension is missing in %s' % database,
                          cause='see pgvector_extension', fix='pgvector_extension: true, then ' + SERVICES_FIX)
    ranked = answers[ROUND_TRIP_ANSWER] or []
    if len(ranked) != len(ROUND_TRIP_SENTENCES):
        return make_check('rag_round_trip', FAIL, 'pgvector returned %d of %d rows' % (len(ranked), len(ROUND_TRIP_SENTENCES)),
                          cause='an unexpected answer from PostgreSQL', fix='psql into the container and repeat by hand')
    first, second = ranked[0], ranked[1]
    described = ('%d sentences embedded with %s (%d dimensions), stored in a temporary table of %s and queried by '
                 'sentence %d: nearest is sentence %d (cosine distance %.4f, next %.4f); nothing kept'
                 % (len(ROUND_TRIP_SENTENCES), model, sizes[0], database, ROUND_TRIP_QUERY + 1, first['id'] + 1,
                    first['distance'], second['distance']))
    if first['id'] != ROUND_TRIP_QUERY or not second['distance'] > first['distance']:
        return make_check('rag_round_trip', FAIL, described,
                          cause='the embeddings do not tell different sentences apart (a broken or non-embedding model)',
                          fix='pull the embedding model again (ollama_models_state: latest) or choose another')
    return make_check('rag_round_trip', OK, described)
