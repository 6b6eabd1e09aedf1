# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils import pg

# Verifiers PostgreSQL 17 (the test world's pgvector image) stored for these passwords.
POSTGRES_VERIFIERS = {
    'pw': 'SCRAM-SHA-256$4096:iw2Ti8oNsArO4LpUFJvJNA==$YFLb6LfKHDiK90ik9XpNJOM9kH3Qs8a6hv0Jl21NHmE='
          ':S+W4aqYLM4GD3vPB7xhBqWrulCi4kPp2zZPQZSuTjjM=',
    'correct horse battery staple': 'SCRAM-SHA-256$4096:ln/ClPEMMb3hfuxXTSV1rg==$MUYvzF/Y05kjnXVgCRSF4dSITqaW3NvIr5G8lX0QIlk='
                                    ':HXN4ISBumpfKugUavesVX9Ilpr9hfIaKUNwYeiskEtg=',
    # No-break space mapped to a space, soft hyphen dropped, the fi ligature NFKC-normalised: SASLprep.
    'p\u00e4ss\u00a0w\u00adord\ufb01': 'SCRAM-SHA-256$4096:FP4tM+LnOboL4zDPERZH2Q==$+V9BbQQjDaTi8aXkFdTaooOol1S4XoNw7iUUhghc/mw='
                                       ':pJHzF+J4eUyl4jtH5pMvxXUxmb9YoEYQw5UQsNpnNeA=',
    'I\u2168': 'SCRAM-SHA-256$4096:ak7D2ZpaJu2tC61Iurfscg==$GfXb0YyiorQxhQRiLnhTSua80iCMJNXmYQE/bgjFTo0='
               ':mSIEiLgcEAcMOYA+c4O7hDd7UEBrcZyV5d51XyznSaw=',
}


@pytest.mark.parametrize('password,stored', sorted(POSTGRES_VERIFIERS.items()))
def test_verifier_matches_what_postgres_stored(password, stored):
    iterations, salt, _stored_key, _server_key = pg.parse_scram_verifier(stored)
    assert iterations == 4096 and len(salt) == 16
    assert pg.scram_verifier(password, salt=salt, iterations=iterations) == stored
    assert pg.password_matches(password, stored)
    assert not pg.password_matches(password + 'x', stored)


def test_saslprep():
    assert pg.saslprep('p\u00e4ss\u00a0w\u00adord\ufb01') == 'p\u00e4ss word\u0066\u0069'.encode()
    assert pg.saslprep('plain ascii') == b'plain ascii'
    # A prohibited character (a private-use code point) makes PostgreSQL use the raw bytes.
    assert pg.saslprep('a\ue000') == 'a\ue000'.encode()


def test_new_verifier_has_random_salt_and_matches():
    one, two = pg.scram_verifier('secret'), pg.scram_verifier('secret')
    assert one != two
    assert pg.password_matches('secret', one) and pg.password_matches('secret', two)
    assert one.startswith('SCRAM-SHA-256$4096:')
    assert len(pg.parse_scram_verifier(one)[1]) == 16
    assert base64.b64decode(one.split('$')[1].split(':')[1]) == pg.parse_scram_verifier(one)[1]


@pytest.mark.parametrize('stored', [None, '', 'md5' + '0' * 32, 'SCRAM-SHA-256$x:y$z', 'SCRAM-SHA-256$4096:!!$a:b'])
def test_non_scram_never_matches(stored):
    assert pg.parse_scram_verifier(stored) is None
    assert pg.password_matches('pw', stored) is False


def test_password_kind_never_reveals_the_verifier():
    assert pg.password_kind(POSTGRES_VERIFIERS['pw']) == 'scram-sha-256'
    assert pg.password_kind('md5abc') == 'md5'
    assert pg.password_kind(None) is None


def test_scrub_masks_verifiers():
    text = "LINE 1: ALTER ROLE \"x\" PASSWORD '%s';" % POSTGRES_VERIFIERS['pw']
    assert 'iw2Ti8' not in pg.scrub(text)
    assert 'SCRAM-SHA-256$********' in pg.scrub(text)


def test_quoting():
    assert pg.quote_ident('Docs') == '"Docs"'
    assert pg.quote_ident('a"b') == '"a""b"'
    assert pg.quote_literal("it's") == "'it''s'"
    assert pg.qualified('my schema', 't"1') == '"my schema"."t""1"'
    assert pg.conninfo_value("host=x' y\\") == "'host=x\\' y\\\\'"
    with pytest.raises(pg.SpecError):
        pg.quote_literal('a\x00b')


@pytest.mark.parametrize('value,message', [
    ('', 'non-empty'),
    (None, 'non-empty'),
    ('x' * 64, 'longer than 63 bytes'),
    ('\u00e4' * 32, 'longer than 63 bytes'),
    ('a\nb', 'control character'),
])
def test_bad_identifiers(value, message):
    with pytest.raises(pg.SpecError, match=message):
        pg.check_identifier(value, 'database')


def test_identifier_limits():
    assert pg.check_identifier('x' * 63, 'database') == 'x' * 63
    assert pg.check_identifier('Mixed Case "quoted"', 'database') == 'Mixed Case "quoted"'


def params(**overrides):
    base = dict(state='present', db_user='postgres', database='rag', owner=None, role=None, password=None,
                extension=True, force=False, table=None, index=None)
    base.update(overrides)
    return base


TABLE = dict(name='chunks', dimensions=3)


@pytest.mark.parametrize('overrides,message', [
    (dict(password='x'), 'password needs role'),
    (dict(role='r', password=''), 'must not be empty'),
    (dict(table=dict(name='t')), 'table.dimensions is required'),
    (dict(table=dict(name='t', dimensions=0)), 'between 1 and 16000'),
    (dict(table=dict(name='t', dimensions=16001)), 'between 1 and 16000'),
    (dict(table=dict(name='t', dimensions=2001), index={}), 'HNSW index supports vector columns of up to 2000 dimensions'),
    (dict(index={}), 'index needs table'),
    (dict(table=TABLE, index=dict(m=1)), 'index.m is 1'),
    (dict(table=TABLE, index=dict(m=16, ef_construction=20)), 'at least 2 \\* index.m'),
    (dict(table=TABLE, index=dict(distance='dot')), 'index.distance'),
    (dict(table=dict(name='t', dimensions=3, content_column='embedding')), 'different names'),
    (dict(table=dict(name='x' * 50, dimensions=3), index={}), 'set index.name'),
    (dict(state='absent', role='r'), 'never a role'),
    (dict(state='absent', database='postgres'), 'never dropped'),
    (dict(database='bad\x01name'), 'control character'),
])
def test_spec_errors(overrides, message):
    with pytest.raises(pg.SpecError, match=message):
        pg.build_spec(params(**overrides))


def test_spec_defaults():
    spec = pg.build_spec(params(table=dict(TABLE), index={}))
    assert spec['table'] == {'name': 'chunks', 'schema': 'public', 'dimensions': 3, 'id_column': 'id', 'id_type': 'bigint',
                             'embedding_column': 'embedding', 'content_column': 'content', 'metadata_column': 'metadata'}
    assert spec['index'] == {'name': 'chunks_embedding_hnsw_idx', 'method': 'hnsw', 'distance': 'cosine',
                             'opclass': 'vector_cosine_ops', 'm': 16, 'ef_construction': 64}
    assert pg.build_spec(params(table=dict(name='t', dimensions=16000)))['table']['dimensions'] == 16000
    assert pg.build_spec(params(table=dict(name='t', dimensions=2000), index={}))['index']['m'] == 16
    assert pg.build_spec(params(table=dict(name='t', content_column=''), state='absent'))['table']['content_column'] is None


def test_create_index_sql():
    spec = pg.build_spec(params(table=dict(name='Chunks', schema='s', dimensions=3), index=dict(distance='ip', m=8, ef_construction=40)))
    assert pg.create_index_sql(spec['table'], spec['index']) == (
        'CREATE INDEX "Chunks_embedding_hnsw_idx" ON "s"."Chunks" USING hnsw ("embedding" vector_ip_ops) '
        'WITH (m = 8, ef_construction = 40);')


def test_state_queries_quote_their_literals():
    spec = pg.build_spec(params(database="o'db", role="r'1", table=dict(name="t'", dimensions=3), index={}))
    cluster = pg.cluster_state_sql(spec)
    assert "datname = 'o''db'" in cluster and "rolname = 'r''1'" in cluster
    database = pg.database_state_sql(spec)
    assert "c.relname = 't'''" in database
    assert "LIKE 'pg\\_%'" in database


def test_parse_state():
    assert pg.parse_state('\n{"a": 1}\n') == {'a': 1}
    with pytest.raises(pg.PgError):
        pg.parse_state('')
    with pytest.raises(pg.PgError):
        pg.parse_state('not json')
    # A document may span lines (json_agg of rows does), so the whole text is parsed.
    assert pg.parse_state('[{"a": 1}, \n {"a": 2}]\n') == [{'a': 1}, {'a': 2}]


def test_connection_string_quotes_every_value():
    assert pg.connection_string("it's \\ host=x", 'postgres') == "dbname='it\\'s \\\\ host=x' user='postgres'"


def meta_commands(script):
    return [line for line in script.splitlines() if line.startswith('\\')]


def test_read_script_connects_only_when_the_database_exists_and_reads_only():
    spec = pg.build_spec(params(database="it's", table=dict(name='t', dimensions=3), index={}))
    script = pg.read_script(spec)
    assert meta_commands(script) == ['\\echo ragops-answer cluster', '\\if :ragops_database_exists',
                                     '\\connect :"ragops_target"', '\\echo ragops-answer database', '\\endif']
    assert "WHERE datname = 'it''s') AS ragops_database_exists \\gset\n" in script
    # The session \connect opens starts read-only before its first query.
    after_connect = script.split('\\connect :"ragops_target"\n', 1)[1]
    assert after_connect.startswith(pg.READ_ONLY_PREAMBLE)
    assert pg.cluster_state_sql(spec) in script and pg.database_state_sql(spec) in script
    assert 'to_json(EXISTS' not in script


def test_read_script_asks_for_rows_only_to_drop_a_table():
    spec = pg.build_spec(params(database='rag', table=dict(name="t'", schema='S'), state='absent'))
    script = pg.read_script(spec)
    assert meta_commands(script) == ['\\echo ragops-answer cluster', '\\if :ragops_database_exists',
                                     '\\connect :"ragops_target"', '\\echo ragops-answer database',
                                     '\\if :ragops_table_exists', '\\echo ragops-answer has_rows', '\\endif', '\\endif']
    assert ("WHERE n.nspname = 'S' AND c.relname = 't''' AND c.relkind IN ('r', 'p')) AS ragops_table_exists \\gset\n"
            in script)
    assert pg.table_has_rows_sql(spec['table']) in script
    for other in (params(database='rag', table=dict(name='t'), index={}, state='absent'),
                  params(database='rag', state='absent'), params(database='rag', table=dict(name='t', dimensions=3))):
        assert 'ragops_table_exists' not in pg.read_script(pg.build_spec(other))


def test_read_script_keeps_the_database_name_out_of_psql_commands():
    """The name is in SQL literals only; \\connect takes it from a variable psql never lexes."""
    name = "x'; \\! id \\connect :ragops_target"
    spec = pg.build_spec(params(database=name, table=dict(name='t'), state='absent'))
    script = pg.read_script(spec)
    assert all(name not in line for line in meta_commands(script))
    assert script.count(pg.quote_literal(name)) == 2  # the cluster answer and the flag for \if
    assert name not in script.replace(pg.quote_literal(name), '')


def test_parse_answers():
    output = ('ragops-answer cluster\n{"database": {"name": "rag"}}\n'
              'ragops-answer database\n{"user_tables": [{"a": 1}, \n {"a": 2}]}\n'
              'ragops-answer has_rows\ntrue\n')
    assert pg.parse_answers(output) == {'cluster': {'database': {'name': 'rag'}},
                                        'database': {'user_tables': [{'a': 1}, {'a': 2}]}, 'has_rows': True}
    assert pg.parse_answers('something psql said first\nragops-answer cluster\n{}\n') == {'cluster': {}}
    assert pg.parse_answers('') == {}
    with pytest.raises(pg.PgError, match='printed nothing where the database state'):
        pg.parse_answers('ragops-answer cluster\n{}\nragops-answer database\n')
    with pytest.raises(pg.PgError, match='cluster state twice'):
        pg.parse_answers('ragops-answer cluster\n{}\nragops-answer cluster\n{}\n')


class ScriptedPsql:
    """Prints a fixed output for the one read; records its arguments."""

    def __init__(self, output):
        self.output = output
        self.queries = []

    def query(self, database, sql, variables=None):
        self.queries.append((database, sql, variables))
        return self.output


def test_read_state_is_one_query_with_the_target_as_a_variable():
    spec = pg.build_spec(params(database='a "b"', db_user='admin', table=dict(name='t'), state='absent'))
    psql = ScriptedPsql('ragops-answer cluster\n{"database": {"name": "a \\"b\\"", "owner": "admin"}}\n'
                        'ragops-answer database\n{"table": {"owner": "admin", "columns": {}}}\n'
                        'ragops-answer has_rows\nfalse\n')
    cluster, db, has_rows = pg.read_state(psql, spec)
    assert cluster['database']['name'] == 'a "b"' and db['table']['owner'] == 'admin' and has_rows is False
    assert psql.queries == [('postgres', pg.read_script(spec), {'ragops_target': "dbname='a \"b\"' user='admin'"})]


def test_read_state_without_the_database_and_with_missing_answers():
    spec = pg.build_spec(params(database='rag', table=dict(name='t'), state='absent'))
    assert pg.read_state(ScriptedPsql('ragops-answer cluster\n{"database": null}\n'), spec) == (
        {'database': None}, pg.EMPTY_DATABASE_STATE, None)
    with pytest.raises(pg.PgError, match='no cluster state'):
        pg.read_state(ScriptedPsql(''), spec)
    with pytest.raises(pg.PgError, match='no database state'):
        pg.read_state(ScriptedPsql('ragops-answer cluster\n{"database": {"name": "rag"}}\n'), spec)
    with pytest.raises(pg.PgError, match='no has_rows state'):
        pg.read_state(ScriptedPsql('ragops-answer cluster\n{"database": {"name": "rag"}}\n'
                                   'ragops-answer database\n{"table": {"owner": "x"}}\n'), spec)


CLUSTER = {'server_version': '17.0', 'superuser': True, 'role': None, 'owner_exists': False, 'database': None,
           'extension_available': '0.8.0'}


def fixed_verifier(password):
    return pg.scram_verifier(password, salt=b'0123456789abcdef')


def test_plan_from_nothing():
    spec = pg.build_spec(params(role='rag', password='pw', table=dict(TABLE), index={}))
    actions, after, warnings = pg.plan(spec, CLUSTER, dict(pg.EMPTY_DATABASE_STATE), password_verifier=fixed_verifier)
    assert warnings == []
    assert [(a.description, a.scope, a.secret) for a in actions] == [
        ('create role rag', 'cluster', True),
        ('create database rag owned by rag', 'cluster', False),
        ('create extension vector 0.8.0', 'database', False),
        ('create table public.chunks with embedding vector(3)', 'database', False),
        ('create index public.chunks_embedding_hnsw_idx (hnsw, cosine, m=16, ef_construction=64)', 'database', False),
    ]
    assert actions[0].sql == 'CREATE ROLE "rag" LOGIN PASSWORD \'%s\';' % fixed_verifier('pw')
    assert after['table']['columns'] == {'id': 'bigint', 'content': 'text', 'metadata': 'jsonb', 'embedding': 'vector(3)'}
    cluster_script = pg.write_script(actions, 'cluster')
    assert "SET log_statement = 'none'" in cluster_script and 'BEGIN' not in cluster_script
    database_script = pg.write_script(actions, 'database')
    assert database_script.startswith(pg.WRITE_PREAMBLE + 'BEGIN;\n') and database_script.endswith('COMMIT;\n')
    assert 'log_statement' not in database_script
    assert 'CREATE TABLE "public"."chunks" (\n  "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n' in database_script
    assert 'ALTER TABLE "public"."chunks" OWNER TO "rag";' in database_script


def existing(password='pw'):
    cluster = dict(CLUSTER, role={'name': 'rag', 'login': True, 'password': pg.scram_verifier(password)},
                   database={'name': 'rag', 'owner': 'rag'}, owner_exists=True)
    db = dict(pg.EMPTY_DATABASE_STATE, extension='0.8.0', schema_exists=True,
              table={'owner': 'rag', 'columns': {'id': 'bigint', 'content': 'text', 'metadata': 'jsonb', 'embedding': 'vector(3)'}},
              relation_kind='r',
              index={'table': 'chunks', 'method': 'hnsw', 'column': 'embedding', 'columns': 1, 'opclass': 'vector_cosine_ops',
                     'options': ['m=16', 'ef_construction=64']},
              index_name_kind='i', user_tables=['public.chunks'])
    return cluster, db


def test_plan_converged_and_password_change():
    spec = pg.build_spec(params(role='rag', password='pw', table=dict(TABLE), index={}))
    cluster, db = existing()
    assert pg.plan(spec, cluster, db)[0] == []
    actions, after, _warnings = pg.plan(pg.build_spec(params(role='rag', password='new', table=dict(TABLE), index={})), cluster, db)
    assert [a.description for a in actions] == ['set the password of role rag']
    assert actions[0].secret and 'new' not in actions[0].sql.split("'")[0]
    assert after['role'] == {'name': 'rag', 'login': True, 'password': 'scram-sha-256', 'password_changed': True}
    # An MD5 hash is replaced by a SCRAM verifier.
    cluster['role']['password'] = 'md5' + '0' * 32
    assert [a.description for a in pg.plan(spec, cluster, db)[0]] == ['set the password of role rag']


def test_plan_index_without_options_uses_pgvector_defaults():
    spec = pg.build_spec(params(table=dict(TABLE), index={}))
    cluster, db = existing()
    db['index']['options'] = None
    assert pg.plan(spec, cluster, db)[0] == []
    db['index']['options'] = ["m='24'"]
    actions = pg.plan(spec, cluster, db)[0]
    assert [a.description for a in actions] == ['rebuild index public.chunks_embedding_hnsw_idx (m 24 -> 16)']
    assert actions[0].sql.startswith('DROP INDEX "public"."chunks_embedding_hnsw_idx";\nCREATE INDEX')


def test_plan_refusals():
    cluster, db = existing()
    with pytest.raises(pg.SpecError, match='vector\\(3\\), the task asks for vector\\(4\\)'):
        pg.plan(pg.build_spec(params(table=dict(name='chunks', dimensions=4))), cluster, db)
    with pytest.raises(pg.SpecError, match='not a superuser'):
        pg.plan(pg.build_spec(params()), dict(cluster, superuser=False), db)
    with pytest.raises(pg.SpecError, match='owner .nobody. is not a role'):
        pg.plan(pg.build_spec(params(owner='nobody')), dict(CLUSTER), dict(pg.EMPTY_DATABASE_STATE))
    with pytest.raises(pg.SpecError, match='not available'):
        pg.plan(pg.build_spec(params()), dict(CLUSTER, extension_available=None), dict(pg.EMPTY_DATABASE_STATE))
    with pytest.raises(pg.SpecError, match='belongs to table other'):
        pg.plan(pg.build_spec(params(table=dict(TABLE), index={})), cluster, dict(db, index=dict(db['index'], table='other')))


def test_plan_adds_missing_columns_and_warns_on_foreign_types():
    cluster, db = existing()
    db['table']['columns'] = {'id': 'bigint', 'content': 'character varying', 'embedding': 'vector(3)'}
    actions, after, warnings = pg.plan(pg.build_spec(params(table=dict(TABLE))), cluster, db)
    assert [a.description for a in actions] == ['add column metadata jsonb to public.chunks']
    assert warnings == ['public.chunks.content is character varying, not text; left as it is']
    assert after['table']['columns']['metadata'] == 'jsonb'


def test_plan_absent():
    cluster, db = existing()
    index_only = pg.build_spec(params(state='absent', table=dict(name='chunks'), index={}))
    assert [a.sql for a in pg.plan(index_only, cluster, db)[0]] == ['DROP INDEX "public"."chunks_embedding_hnsw_idx";']
    table = pg.build_spec(params(state='absent', table=dict(name='chunks')))
    with pytest.raises(pg.SpecError, match='holds rows'):
        pg.plan(table, cluster, db, has_rows=True)
    assert [a.sql for a in pg.plan(table, cluster, db, has_rows=False)[0]] == ['DROP TABLE "public"."chunks";']
    database = pg.build_spec(params(state='absent'))
    with pytest.raises(pg.SpecError, match='has tables \\(public.chunks\\)'):
        pg.plan(database, cluster, db)
    forced = pg.build_spec(params(state='absent', force=True))
    actions, after, _warnings = pg.plan(forced, cluster, db)
    assert [a.sql for a in actions] == ['DROP DATABASE "rag" WITH (FORCE);']
    assert after == {'database': None, 'extension': None}
    assert pg.plan(database, dict(CLUSTER), dict(pg.EMPTY_DATABASE_STATE))[0] == []
