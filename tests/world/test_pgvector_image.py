"""Contract tests of the test world's pgvector/pgvector:pg17 stand-in (tests/world/world.sh).

The stand-in is built from Debian trixie's postgresql-17 and postgresql-17-pgvector; these
tests prove that it honours the official postgres image's entrypoint contract, which the
real pgvector/pgvector image inherits, against the host's Docker engine.

Password checks connect over TCP to the container's own bridge address: as in the official
image, initdb's defaults trust the local socket and loopback, and only the appended
``host all all all scram-sha-256`` line asks other hosts for the password.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
import uuid
from typing import NamedTuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
WORLD = os.path.join(HERE, 'world.sh')
IMAGE = os.environ.get('RAGOPS_WORLD_PGVECTOR_IMAGE', 'ragops-world/pgvector:pg17')
PGDATA = '/var/lib/postgresql/data'


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the docker CLI; output is captured as text."""
    return subprocess.run(['docker', *args], capture_output=True, text=True, check=check, timeout=timeout)


def docker_answers() -> bool:
    """Whether the Docker engine answers."""
    try:
        return docker('version', '--format', '{{.Server.Version}}', check=False, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(name='image', scope='session')
def fixture_image() -> str:
    """The stand-in image, current with its recipe (world.sh builds it when it is not)."""
    if not docker_answers():
        subprocess.run([WORLD, 'dockerd'], check=True)
    subprocess.run([WORLD, 'images', 'pgvector'], check=True)
    return IMAGE


class Login(NamedTuple):
    """Who psql logs in as."""

    user: str = 'postgres'
    password: str = ''
    dbname: str | None = None


class Postgres:
    """Containers and volumes of one test, removed at its end."""

    def __init__(self, image_name: str) -> None:
        self.image = image_name
        self.prefix = 'ragops-pgtest-' + uuid.uuid4().hex[:8]
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def volume(self) -> str:
        """A new named volume."""
        name = f'{self.prefix}-vol{len(self.volumes)}'
        docker('volume', 'create', name)
        self.volumes.append(name)
        return name

    def start(self, env: dict[str, str] | None = None, args: tuple[str, ...] = (), mounts: tuple[str, ...] = ()) -> str:
        """Start a detached container (docker run -d) and return its name."""
        name = f'{self.prefix}-c{len(self.containers)}'
        cmd = ['run', '-d', '--name', name]
        for key, value in (env or {}).items():
            cmd += ['-e', f'{key}={value}']
        for mount in mounts:
            cmd += ['-v', mount]
        self.containers.append(name)
        docker(*cmd, self.image, *args)
        return name

    def run_to_exit(self, env: dict[str, str], mounts: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        """Run a container in the foreground until it exits."""
        name = self.start(env, mounts=mounts)
        code = int(docker('wait', name, timeout=60).stdout.strip())
        logs = docker('logs', name)
        return subprocess.CompletedProcess([name], code, logs.stdout, logs.stderr)

    def wait_ready(self, name: str, timeout: float = 90) -> subprocess.CompletedProcess:
        """Poll pg_isready over TCP until the real server (not the socket-only init server) answers."""
        deadline = time.monotonic() + timeout
        while True:
            state = json.loads(docker('inspect', '-f', '{{json .State}}', name).stdout)
            if not state['Running']:
                pytest.fail(f"{name} exited ({state['ExitCode']}):\n{self.logs(name)}")
            ready = docker('exec', name, 'pg_isready', '-h', '127.0.0.1', '-p', '5432', check=False)
            if ready.returncode == 0:
                return ready
            if time.monotonic() > deadline:
                pytest.fail(f'{name} not ready after {timeout}s:\n{self.logs(name)}')
            time.sleep(0.3)

    def logs(self, name: str) -> str:
        """The container's output."""
        out = docker('logs', name, check=False)
        return out.stdout + out.stderr

    def address(self, name: str) -> str:
        """The container's address on the default bridge."""
        return docker('inspect', '-f', '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}', name).stdout.strip()

    def psql(self, name: str, sql: str, login: Login = Login(), check: bool = True) -> subprocess.CompletedProcess:
        """Run SQL with psql inside the container, over TCP to its bridge address with a password."""
        cmd = ['exec', '-e', 'PGPASSWORD=' + login.password, name, 'psql', '-h', self.address(name), '-p', '5432',
               '-U', login.user, '-d', login.dbname or login.user, '-v', 'ON_ERROR_STOP=1', '-X', '-tA', '-c', sql]
        return docker(*cmd, check=check)

    def restart_with(self, name: str, env: dict[str, str], mounts: tuple[str, ...]) -> str:
        """Stop and remove a container, then start a new one on the same mounts."""
        docker('stop', name, timeout=60)
        docker('rm', '-v', name)
        self.containers.remove(name)
        return self.start(env, mounts=mounts)

    def cleanup(self) -> None:
        """Remove everything this test created."""
        if self.containers:
            docker('rm', '-f', '-v', *self.containers, check=False)
        if self.volumes:
            docker('volume', 'rm', '-f', *self.volumes, check=False)


@pytest.fixture(name='pg')
def fixture_pg(image: str):
    """A Postgres helper whose containers and volumes go at the end of the test."""
    helper = Postgres(image)
    try:
        yield helper
    finally:
        helper.cleanup()


def test_image_metadata(image: str) -> None:
    """The metadata the official image has: entrypoint, CMD, stop signal, port, PGDATA, volume."""
    config = json.loads(docker('image', 'inspect', '-f', '{{json .Config}}', image).stdout)
    assert config['Entrypoint'] == ['docker-entrypoint.sh']
    assert config['Cmd'] == ['postgres']
    assert config['StopSignal'] == 'SIGINT'
    assert '5432/tcp' in config['ExposedPorts']
    assert 'PGDATA=' + PGDATA in config['Env']
    assert PGDATA in config['Volumes']
    assert config['Labels']['org.ragops.world.stand-in'] == 'true'


def test_user_password_db(pg: Postgres) -> None:
    """POSTGRES_USER/PASSWORD/DB: that user owns that database and must give that password."""
    name = pg.start({'POSTGRES_USER': 'app', 'POSTGRES_PASSWORD': 's3cret pw', 'POSTGRES_DB': 'appdb'})
    ready = pg.wait_ready(name)
    assert ready.returncode == 0
    assert 'accepting connections' in ready.stdout
    plain = docker('exec', name, 'pg_isready', check=False)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    out = pg.psql(name, 'SELECT current_user, current_database()', Login('app', 's3cret pw', 'appdb'))
    assert out.stdout.strip() == 'app|appdb'
    wrong = pg.psql(name, 'SELECT 1', Login('app', 'wrong', 'appdb'), check=False)
    assert wrong.returncode != 0
    assert 'password authentication failed for user "app"' in wrong.stderr
    # The server runs as postgres, not root, with the data directory at mode 0700.
    assert docker('exec', name, 'stat', '-c', '%U', '/proc/1').stdout.strip() == 'postgres'
    assert docker('exec', name, 'stat', '-c', '%U %a', PGDATA).stdout.strip() == 'postgres 700'
    hba = docker('exec', name, 'cat', PGDATA + '/pg_hba.conf').stdout
    assert 'host all all all scram-sha-256' in hba.splitlines()
    assert pg.psql(name, 'SHOW listen_addresses', Login('app', 's3cret pw', 'appdb')).stdout.strip() == '*'


def test_defaults_user_and_db(pg: Postgres) -> None:
    """Without POSTGRES_USER and POSTGRES_DB, both are postgres."""
    name = pg.start({'POSTGRES_PASSWORD': 'pw'})
    pg.wait_ready(name)
    assert pg.psql(name, 'SELECT current_user, current_database()', Login(password='pw')).stdout.strip() == 'postgres|postgres'


def test_password_file(pg: Postgres, tmp_path) -> None:
    """POSTGRES_PASSWORD_FILE: the password is the file's content."""
    secret = tmp_path / 'pgpass'
    secret.write_text('from-a-file\n', encoding='utf-8')
    name = pg.start({'POSTGRES_PASSWORD_FILE': '/run/secrets/pgpass', 'POSTGRES_USER_FILE': '/run/secrets/pguser'},
                    mounts=(f'{secret}:/run/secrets/pgpass:ro', f"{_write(tmp_path / 'pguser', 'fileuser')}:/run/secrets/pguser:ro"))
    pg.wait_ready(name)
    out = pg.psql(name, 'SELECT current_user', Login('fileuser', 'from-a-file'))
    assert out.stdout.strip() == 'fileuser'
    assert pg.psql(name, 'SELECT 1', Login('fileuser', 'wrong'), check=False).returncode != 0


def _write(path, text: str) -> str:
    path.write_text(text, encoding='utf-8')
    return str(path)


def test_password_and_file_exclusive(pg: Postgres, tmp_path) -> None:
    """Both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE: the official error, exit 1."""
    secret = _write(tmp_path / 'pgpass', 'x')
    result = pg.run_to_exit({'POSTGRES_PASSWORD': 'a', 'POSTGRES_PASSWORD_FILE': '/run/secrets/pgpass'},
                            mounts=(f'{secret}:/run/secrets/pgpass:ro',))
    assert result.returncode == 1
    assert 'error: both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE are set (but are exclusive)' in result.stderr


def test_password_required(pg: Postgres) -> None:
    """No password on an empty data directory: the official error message, exit 1."""
    result = pg.run_to_exit({})
    assert result.returncode == 1
    assert 'Error: Database is uninitialized and superuser password is not specified.' in result.stderr
    assert 'You must specify POSTGRES_PASSWORD to a non-empty value for the' in result.stderr


def test_host_auth_method_trust(pg: Postgres) -> None:
    """POSTGRES_HOST_AUTH_METHOD=trust: no password needed, with the official warning."""
    name = pg.start({'POSTGRES_HOST_AUTH_METHOD': 'trust'})
    pg.wait_ready(name)
    assert 'WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust".' in pg.logs(name)
    assert pg.psql(name, 'SELECT 1', Login(password='anything')).stdout.strip() == '1'


INIT_SQL = """
CREATE TABLE init_marker (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
INSERT INTO init_marker DEFAULT VALUES;
"""
INIT_SH = """
# sourced (not executable): the entrypoint's functions are at hand, as in the official image
docker_process_sql -c 'CREATE TABLE sh_marker (db text); INSERT INTO sh_marker VALUES (current_database());'
"""


def test_initdb_scripts_run_once_and_password_ignored_later(pg: Postgres, tmp_path) -> None:
    """initdb.d runs once on an empty data directory; a later start skips it and keeps the old password."""
    initdir = tmp_path / 'initdb.d'
    initdir.mkdir()
    (initdir / '10-marker.sql').write_text(INIT_SQL, encoding='utf-8')
    (initdir / '20-gz.sql.gz').write_bytes(gzip.compress(b'CREATE TABLE gz_marker (x int);\n'))
    (initdir / '30-source.sh').write_text(INIT_SH, encoding='utf-8')
    (initdir / '40-readme.txt').write_text('not run\n', encoding='utf-8')
    os.chmod(initdir, 0o755)
    mounts = (f'{pg.volume()}:{PGDATA}', f'{initdir}:/docker-entrypoint-initdb.d:ro')
    env = {'POSTGRES_USER': 'app', 'POSTGRES_PASSWORD': 'first', 'POSTGRES_DB': 'appdb'}

    name = pg.start(env, mounts=mounts)
    pg.wait_ready(name)
    logs = pg.logs(name)
    assert 'running /docker-entrypoint-initdb.d/10-marker.sql' in logs
    assert 'ignoring /docker-entrypoint-initdb.d/40-readme.txt' in logs
    assert 'PostgreSQL init process complete; ready for start up.' in logs
    query = 'SELECT (SELECT count(*) FROM init_marker), (SELECT db FROM sh_marker), to_regclass(\'gz_marker\') IS NOT NULL'
    assert pg.psql(name, query, Login('app', 'first', 'appdb')).stdout.strip() == '1|appdb|t'

    name = pg.restart_with(name, dict(env, POSTGRES_PASSWORD='second'), mounts)
    pg.wait_ready(name)
    logs = pg.logs(name)
    assert 'Skipping initialization' in logs
    assert 'docker-entrypoint-initdb.d' not in logs
    assert pg.psql(name, query, Login('app', 'first', 'appdb')).stdout.strip() == '1|appdb|t'
    wrong = pg.psql(name, 'SELECT 1', Login('app', 'second', 'appdb'), check=False)
    assert wrong.returncode != 0
    assert 'password authentication failed' in wrong.stderr


def test_vector_extension(pg: Postgres) -> None:
    """pgvector 0.8.0: the extension installs and its distance operator works."""
    name = pg.start({'POSTGRES_PASSWORD': 'pw'})
    pg.wait_ready(name)
    pg.psql(name, 'CREATE EXTENSION vector', Login(password='pw'))
    out = pg.psql(name, "SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector, extversion FROM pg_extension WHERE extname = 'vector'", Login(password='pw'))
    distance, version = out.stdout.strip().split('|')
    assert float(distance) == 1
    assert version == '0.8.0'


@pytest.mark.parametrize('args, expected', [
    (('-c', 'max_connections=50'), '50'),
    (('postgres', '-c', 'max_connections=60', '-c', 'shared_buffers=64MB'), '60'),
])
def test_extra_server_arguments(pg: Postgres, args: tuple[str, ...], expected: str) -> None:
    """Arguments after the image name reach the server (a leading '-' gets postgres put first)."""
    name = pg.start({'POSTGRES_PASSWORD': 'pw'}, args=args)
    pg.wait_ready(name)
    assert pg.psql(name, 'SHOW max_connections', Login(password='pw')).stdout.strip() == expected


def test_other_commands_run_as_given(image: str) -> None:
    """A command other than postgres runs as given, without any initialisation."""
    out = docker('run', '--rm', image, 'psql', '--version')
    assert out.stdout.startswith('psql (PostgreSQL) 17.')
