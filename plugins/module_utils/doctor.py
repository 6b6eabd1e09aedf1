# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stack doctor: read everything once, then decide every check (contract C3).

``Doctor.run()`` is the whole visit to one host, in one process: Docker (``docker info``,
daemon.json, the two containers' inspect and the Ollama log), the GPU (the facts, a probe
container with the Ollama container's own GPU request, the device nodes inside the Ollama
container), Ollama (version, tags, show, one embed call that also loads the embedding model,
ps) and pgvector (one psql session). The decisions are doctor_checks_gpu.py's and
doctor_checks_stack.py's; this file only gathers and orders them.

Nothing here changes the host. The one thing created is the probe container, removed before
the run ends (and any left by a run that died is removed by the next one); the RAG round trip
writes only to a temporary table inside a transaction that is rolled back.
"""

from __future__ import annotations

import time
import uuid

from ansible_collections.ragops.gpu_stack.plugins.module_utils import daemon_json, gpu, model_name, ollama_models, pg
from ansible_collections.ragops.gpu_stack.plugins.module_utils import doctor_checks_gpu as gpu_checks
from ansible_collections.ragops.gpu_stack.plugins.module_utils import doctor_checks_stack as stack_checks
from ansible_collections.ragops.gpu_stack.plugins.module_utils.docker_exec import exec_in_container
from ansible_collections.ragops.gpu_stack.plugins.module_utils.doctor_record import FAIL, make_check, report_line, worst
from ansible_collections.ragops.gpu_stack.plugins.module_utils.ollama_api import OllamaError

PROBE_PREFIX = 'ragops-doctor-probe-'
PROBE_LABEL = 'org.ragops.gpu_stack.doctor-probe'
# /bin/sh exists in the real ollama/ollama image (Ubuntu) as in any other; ls needs no GPU library.
PROBE_SCRIPT = 'ls -1d /dev/nvidia* 2>/dev/null; exit 0'
# The device nodes a GPU container holds, with their group ids, and the groups its processes run with.
NODES_SCRIPT = ('for f in /dev/nvidia* /dev/kfd /dev/dri/renderD*; do [ -e "$f" ] && echo "node $f $(stat -c %g "$f")"; '
                'done; echo "groups $(id -G)"')
# What the toolkit's own `docker run --gpus all` asks for, when the Ollama container asks for nothing.
DEFAULT_NVIDIA_REQUEST = {'Driver': 'nvidia', 'Count': -1, 'DeviceIDs': None, 'Capabilities': [['gpu']], 'Options': {}}
LOG_TAIL = 5


def _describe_request(host_config):
    words = []
    for request in host_config.get('DeviceRequests') or []:
        ids = request.get('DeviceIDs')
        words.append('--gpus %s' % (','.join(ids) if ids else ('all' if request.get('Count') == -1 else request.get('Count'))))
    if host_config.get('Runtime') not in (None, '', 'runc'):
        words.append('--runtime %s' % host_config['Runtime'])
    return ' '.join(words) or 'no GPU request'


def _expected_gpu_count(requests, facts):
    for request in requests:
        if request.get('DeviceIDs'):
            return len(request['DeviceIDs'])
        if request.get('Count') not in (None, -1):
            return int(request['Count'])
    return (facts or {}).get('gpu_count') or None


class Doctor:
    """One host's visit. ``api``: a docker APIClient, or None with ``docker_error``; ``ollama_client(url)``
    makes an OllamaClient; ``run_command(argv)`` and ``which(name)`` as gpu.collect takes them."""

    def __init__(self, params, api, docker_error, ollama_client, run_command, which, clock=time.monotonic):
        self.params = params
        self.api = api
        self.docker_error = docker_error
        self.ollama_client = ollama_client
        self.run_command = run_command
        self.which = which
        self.clock = clock
        self.root = params.get('facts_root') or '/'
        self.checks = []
        self.host = {}

    # ------------------------------------------------------------------ the visit
    def run(self):
        started = self.clock()
        desired = ollama_models.desired_models({'models': self.params.get('models') or [],
                                                'state': self.params.get('models_state') or 'present'})
        info = self._docker_info()
        self._daemon_json()
        facts = self.params.get('gpu_facts')
        if facts is None:
            facts = gpu.collect(root=self.root, run_command=self.run_command, which=self.which, run_tools=True)
        expected = gpu_checks.expected_vendor(self.params.get('expected_gpu') or 'auto', facts)
        self.host.update(expected_gpu=expected, gpu_vendor=facts.get('gpu_vendor'),
                         predicted_inference=gpu_checks.outlook(facts).get('inference'))
        self.add(gpu_checks.check_gpu(expected, facts))
        if self.api is None:
            return self._finish(started)

        ollama = self.params['ollama']
        pgv = self.params.get('pgvector')
        ollama_inspect = self._inspect(ollama['name'])
        pg_inspect = self._inspect(pgv['name']) if pgv else None
        self.host['ollama_gpu'] = ((ollama_inspect or {}).get('Config') or {}).get('Labels', {}).get('org.ragops.gpu_stack.gpu') \
            if ollama_inspect else None
        running = bool(ollama_inspect and (ollama_inspect.get('State') or {}).get('Running'))
        log_text = self._log_text(ollama['name'], ollama_inspect) if ollama_inspect else ''

        evidence = {'expected': expected, 'facts': facts, 'container': ollama_inspect, 'name': ollama['name'],
                    'cgroup_driver': info.get('CgroupDriver'), 'log_hints': gpu_checks.log_hints(log_text)}
        wanted = ollama.get('state') or 'started'
        # The GPU checks are about the container the inventory wants running; a stopped or absent
        # Ollama (ollama_state) has no GPU to prove.
        if wanted == 'started' and expected == 'nvidia':
            self._nvidia(facts, info, ollama_inspect, running, evidence)
        elif wanted == 'started' and expected == 'amd':
            self._amd(ollama_inspect, running, evidence)

        if wanted == 'started':
            self.add(stack_checks.check_container('ollama_container', ollama['name'], ollama_inspect,
                                                  self._tail(log_text), 'Ollama'))
        else:
            self.add(stack_checks.check_not_serving('ollama_container', ollama['name'], ollama_inspect, wanted))
        embed = self._ollama(ollama, ollama_inspect, desired, facts, expected, log_text, evidence) \
            if running and wanted == 'started' else {}
        if pgv:
            self._pgvector(pgv, pg_inspect, embed)
        self.add(stack_checks.check_exposure([
            dict(ollama, inspect=ollama_inspect, variable='ollama'),
        ] + ([dict(pgv, inspect=pg_inspect, variable='pgvector')] if pgv else [])))
        return self._finish(started)

    def add(self, check):
        if check is not None:
            self.checks.append(check)
        return check

    def _finish(self, started):
        self.host['seconds'] = round(self.clock() - started, 3)
        status = worst(self.checks)
        self.host['failed'] = [c['id'] for c in self.checks if c['status'] == FAIL]
        return {'checks': self.checks, 'status': status, 'host': self.host,
                'report': [report_line(c) for c in self.checks]}

    # ------------------------------------------------------------------ Docker
    def _docker_info(self):
        info, error = {}, self.docker_error
        if self.api is not None:
            try:
                info = self.api.info()
            except Exception as exc:  # pylint: disable=broad-exception-caught
                error = '%s: %s' % (type(exc).__name__, exc)
                self.api = None
        self.add(stack_checks.check_docker(error, info))
        return info

    def _daemon_json(self):
        path = daemon_json.DEFAULT_PATH
        data, error, problem = None, None, None
        try:
            text = daemon_json.read_text(gpu.host_path(self.root, path))
            if text is not None:
                data = daemon_json.parse(text, path)
                problem = daemon_json.default_runtime_problem(data)
        except daemon_json.DaemonJsonError as exc:
            error = str(exc)
        self.daemon_json = {} if data is None and error is None else data
        self.add(stack_checks.check_daemon_json(path, error, data, problem))

    def _inspect(self, name):
        from docker.errors import NotFound  # pylint: disable=import-outside-toplevel
        try:
            return self.api.inspect_container(name)
        except NotFound:
            return None

    def _log_text(self, name, inspect):
        try:
            raw = self.api.logs(name, stdout=True, stderr=True, since=stack_checks.started_epoch(inspect), timestamps=False)
        except Exception:  # pylint: disable=broad-exception-caught
            return ''
        return (raw or b'').decode('utf-8', 'replace')

    @staticmethod
    def _tail(log_text):
        return [line.strip()[:200] for line in (log_text or '').splitlines() if line.strip()][-LOG_TAIL:]

    def _exec(self, name, script):
        code, out, err = exec_in_container(self.api, name, ['/bin/sh', '-c', script], b'', {})
        if code != 0 and not out:
            raise RuntimeError('exit code %s: %s' % (code, (err or b'').decode('utf-8', 'replace').strip()[:200]))
        return (out or b'').decode('utf-8', 'replace')

    def _listing(self, name):
        try:
            nodes, groups = gpu_checks.parse_node_listing(self._exec(name, NODES_SCRIPT))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            return {'error': '%s: %s' % (type(exc).__name__, exc)}
        return {'nodes': nodes, 'groups': groups}

    # ------------------------------------------------------------------ GPU
    def _nvidia(self, facts, info, inspect, running, evidence):
        host_config = (inspect or {}).get('HostConfig') or {}
        kind = gpu_checks.nvidia_request_kind(host_config)
        cdi = []
        for spec in gpu.list_cdi_specs(self.root):
            if spec.get('valid'):
                cdi.extend('%s=%s' % (spec['kind'], device) for device in spec['devices'])
        self.add(gpu_checks.check_nvidia_runtime(info.get('Runtimes') or {}, self.daemon_json, cdi, kind))
        self.add(gpu_checks.check_nvidia_ctk(gpu.query_nvidia_ctk(self.which('nvidia-ctk'), self.run_command)))
        self.add(gpu_checks.check_nvidia_driver(facts))
        if inspect is not None and self.params.get('gpu_probe', True):
            evidence['probe'] = self._probe(inspect, facts)
            self.add(gpu_checks.check_gpu_probe(evidence['probe'], facts))
        if running:
            evidence['devices_check'] = self.add(gpu_checks.check_gpu_devices(
                'nvidia', inspect['Name'].lstrip('/'), self._listing(inspect['Id']), {}, host_config.get('GroupAdd')))

    def _amd(self, inspect, running, evidence):
        if not running:
            return
        listing = self._listing(inspect['Id'])
        groups = gpu.read_group_names(self.root)
        host_nodes = {path: gpu.stat_device_node(self.root, path, groups) for path in (listing.get('nodes') or {})}
        evidence['listing'] = listing
        evidence['devices_check'] = self.add(gpu_checks.check_gpu_devices(
            'amd', inspect['Name'].lstrip('/'), listing, host_nodes, (inspect.get('HostConfig') or {}).get('GroupAdd')))

    def _probe(self, inspect, facts):
        """A throwaway container from the Ollama container's image, with its GPU request, listing /dev/nvidia*.

        Not AutoRemove: the engine may remove it before its output is read. It is removed here
        instead, and probes left by a run that was killed are removed first.
        """
        host_config = inspect.get('HostConfig') or {}
        requests = list(host_config.get('DeviceRequests') or [])
        own = gpu_checks.nvidia_request_kind(host_config) is None
        if own:
            requests = [dict(DEFAULT_NVIDIA_REQUEST)]
        probe_config = {'DeviceRequests': requests, 'NetworkMode': 'none', 'AutoRemove': False,
                        'Devices': [d for d in host_config.get('Devices') or [] if 'nvidia' in (d.get('PathOnHost') or '')]}
        if host_config.get('Runtime') not in (None, '', 'runc'):
            probe_config['Runtime'] = host_config['Runtime']
        env = [item for item in (inspect.get('Config') or {}).get('Env') or []
               if item.split('=', 1)[0] in ('NVIDIA_VISIBLE_DEVICES', 'NVIDIA_DRIVER_CAPABILITIES', 'CUDA_VISIBLE_DEVICES')]
        result = {'ran': False, 'nodes': [], 'error': None, 'own_request': own,
                  'request': _describe_request(dict(host_config, DeviceRequests=requests)),
                  'expected_count': _expected_gpu_count(requests, facts)}
        for stale in self.api.containers(all=True, filters={'label': PROBE_LABEL}):
            self._remove(stale['Id'])
        name = PROBE_PREFIX + uuid.uuid4().hex[:12]
        created = None
        try:
            created = self.api.create_container(
                image=inspect['Image'], entrypoint=['/bin/sh'], command=['-c', PROBE_SCRIPT], name=name,
                labels={PROBE_LABEL: 'true'}, environment=env, host_config=probe_config,
                healthcheck={'Test': ['NONE']}, network_disabled=True)
            self.api.start(created['Id'])
            self.api.wait(created['Id'], timeout=self.params.get('probe_timeout') or 60)
            output = (self.api.logs(created['Id'], stdout=True, stderr=False) or b'').decode('utf-8', 'replace')
            result.update(ran=True, nodes=gpu_checks.probe_nodes(output))
        except Exception as exc:  # pylint: disable=broad-exception-caught
            result['error'] = str(getattr(exc, 'explanation', None) or exc).strip()[:300]
        finally:
            if created:
                self._remove(created['Id'])
        return result

    def _remove(self, container_id):
        try:
            self.api.remove_container(container_id, force=True)
        except Exception:  # pylint: disable=broad-exception-caught
            pass

    # ------------------------------------------------------------------ Ollama
    def _ollama(self, ollama, inspect, desired, facts, expected, log_text, evidence):
        url = stack_checks.api_url_for(ollama, inspect)
        client = self.ollama_client(url)
        try:
            version, error = client.version(), None
        except OllamaError as exc:
            version, error = None, exc.message
        self.add(stack_checks.check_ollama_api(url, version, error))
        if error:
            return {}
        try:
            installed = ollama_models.installed_index(client.tags())
        except OllamaError as exc:
            self.add(make_check('ollama_models', FAIL, 'GET %s/api/tags failed: %s' % (url, exc.message),
                                cause='Ollama answers but cannot list its models (a damaged model store?)',
                                fix='docker logs %s' % ollama['name']))
            return {}
        self.add(stack_checks.check_models(desired, installed))

        model, show, show_error = self._embedding_model(client, desired, installed)
        dimensions = stack_checks.embedding_length(show)
        self.add(stack_checks.check_embedding_model(model, show, show_error, dimensions))
        self.host.update(embedding_model=model, embedding_dimensions=dimensions)
        embed = {'model': model, 'dimensions': dimensions, 'vectors': None, 'error': show_error}
        if model and not show_error:
            try:
                embed['vectors'] = client.embed(model, stack_checks.ROUND_TRIP_SENTENCES,
                                                timeout=self.params.get('timeout') or 120)
            except OllamaError as exc:
                embed['error'] = exc.message
        try:
            ps = client.ps()
        except OllamaError:
            ps = {'models': []}
        loaded = [{'name': m.get('name'), 'size': m.get('size'), 'size_vram': m.get('size_vram')} for m in ps['models']]
        self.host['models_loaded'] = loaded

        lines = gpu_checks.inference_compute(log_text)
        self.host['libraries'] = gpu_checks.libraries(lines)
        self.add(gpu_checks.check_vram(expected, lines, facts, self._must_hold(desired, installed, ps, model)))
        causes = gpu_checks.cpu_fallback_causes(evidence) if expected != 'none' else []
        inference = self.add(gpu_checks.check_gpu_inference(expected, loaded, causes))
        self.add(gpu_checks.check_compute_library(expected, lines, causes,
                                                  ((inspect.get('State') or {}).get('StartedAt') or '')[:19]))
        self.host['inference'] = self._where(loaded) if inference and loaded else 'unknown'
        return embed

    @staticmethod
    def _where(loaded):
        vram = [int(m.get('size_vram') or 0) for m in loaded]
        if not any(vram):
            return 'cpu'
        if all(v and v >= int(m.get('size') or 0) for v, m in zip(vram, loaded)):
            return 'gpu'
        return 'partial'

    def _embedding_model(self, client, desired, installed):
        """(name, /api/show answer, error): the model given, else the first listed (preloaded first) that
        /api/show calls an embedding model."""
        given = self.params.get('embedding_model')
        for name in stack_checks.embedding_candidates(desired, given):
            try:
                key = model_name.parse(name).key
            except model_name.InvalidModelName as exc:
                return name, None, str(exc)
            if key not in installed:
                if given:
                    return name, None, '%s is not installed' % name
                continue
            try:
                show = client.show(name)
            except OllamaError as exc:
                if given:
                    return name, None, exc.message
                continue
            if given or stack_checks.is_embedding_model(show):
                return name, show, None
        return None, None, None

    @staticmethod
    def _must_hold(desired, installed, ps, embedding_model):
        """[(name, bytes)] of the models Ollama keeps loaded: the preloaded ones and the embedding model,
        at their loaded size when loaded (weights and context), else their size on disk."""
        names = [d.name.shortest for d in desired if d.preload and d.state != 'absent']
        if embedding_model and embedding_model not in names:
            names.append(embedding_model)
        result = []
        for name in names:
            parsed = model_name.parse(name)
            loaded = ollama_models.loaded_entry(ps, parsed)
            size = (loaded or {}).get('size') or (installed.get(parsed.key) or {}).get('size')
            if size:
                result.append((name, int(size)))
        return result

    # ------------------------------------------------------------------ pgvector
    def _pgvector(self, pgv, inspect, embed):
        check = self.add(stack_checks.check_container('pgvector_container', pgv['name'], inspect, [],
                                                      'extension, table and RAG round trip'))
        if check['status'] == FAIL:
            return
        psql = pg.DockerPsql(self.api, pgv['name'], pgv.get('user') or 'postgres')
        table = pgv.get('table')
        vectors = embed.get('vectors') if self.params.get('round_trip', True) else None
        answers, error = {}, None
        try:
            answers = pg.parse_answers(psql.run(pgv['database'], stack_checks.session_sql(table, vectors)))
        except pg.PgError as exc:
            error = str(exc)
        state = answers.get(stack_checks.STATE_ANSWER) or {}
        self.host['pgvector_extension'] = state.get('extension')
        self.add(stack_checks.check_pgvector_extension(state, error, pgv['database']))
        if error:
            return
        if table:
            self.add(stack_checks.check_pgvector_dimension(table, state.get('columns'), embed.get('model'),
                                                           embed.get('dimensions')))
        if self.params.get('round_trip', True) and (embed.get('model') or embed.get('error')):
            self.add(stack_checks.check_round_trip(embed.get('model'), vectors, embed.get('error'), answers, None,
                                                   pgv['database']))
