"""The whole site.yml on a mixed fleet (a faked NVIDIA host, a faked AMD host, a CPU host): what
each converge decided and the doctor's green report with the RAG round trip on every host; then,
from side_effect.yml's records, one planted fault per host that the doctor fails on that host
alone, naming the cause, and a Pascal GPU on driver 535 predicted as CPU fallback before deploy
and failed by the doctor with that cause.

Records: converge.yml's JSON lines on each host (/var/tmp/site-converges.jsonl); the doctor's
JSON reports on the controller (<ephemeral>/doctor/converge/, one per converge); side_effect.yml's
runs on the controller (<ephemeral>/side-effect/<case>.json, <case>.run.json: the
ansible.posix.json callback's output, <case>/: the doctor's report of that run)."""
from __future__ import annotations

import glob
import json
import os

import pytest


NVIDIA, AMD, CPU = 'ragops-site-nvidia', 'ragops-site-amd', 'ragops-site-cpu'
HOSTS = (NVIDIA, AMD, CPU)
EMBEDDING = 'all-minilm:latest'
EPHEMERAL = os.environ.get('MOLECULE_EPHEMERAL_DIRECTORY', '')
SIDE_EFFECT = os.path.join(EPHEMERAL, 'side-effect')
# What the inventory's groups ask of each host: the runtime, the GPU library Ollama must use.
EXPECTED = {
    NVIDIA: {'runtime': 'nvidia', 'inference': 'gpu', 'library': 'library=CUDA'},
    AMD: {'runtime': 'amd', 'inference': 'gpu', 'library': 'library=ROCm'},
    CPU: {'runtime': 'none', 'inference': 'cpu', 'library': 'library=cpu'},
}
# The side effect's faults: the host planted on, and the doctor's failing checks there.
FAULTS = {
    'nvidia_runtime': NVIDIA,
    'render_group': AMD,
    'pgvector_stopped': CPU,
    'pascal_doctor': NVIDIA,
}
FAIL_TASK = 'Fail the host where a check failed'


@pytest.fixture(scope='module')
def fleet(instances):
    """{instance name: testinfra host}."""
    return instances(HOSTS)


@pytest.fixture(scope='module')
def converges(fleet):
    """{instance: [first converge's record, second's]}."""
    return {name: [json.loads(line) for line in host.file('/var/tmp/site-converges.jsonl').content_string.splitlines()]
            for name, host in fleet.items()}


def load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def doctor_reports(directory):
    """The doctor's JSON reports in a directory, oldest first (their names are UTC stamps)."""
    return [load(path) for path in sorted(glob.glob(os.path.join(directory, 'doctor-*.json')))]


@pytest.fixture(scope='module')
def converge_reports():
    return doctor_reports(os.path.join(EPHEMERAL, 'doctor', 'converge'))


class Run:
    """One ansible-playbook run of side_effect.yml: its record, callback output and doctor report."""

    def __init__(self, case):
        self.record = load(os.path.join(SIDE_EFFECT, case + '.json'))
        self.output = load(os.path.join(SIDE_EFFECT, case + '.run.json'))
        reports = doctor_reports(os.path.join(SIDE_EFFECT, case))
        self.report = reports[-1] if reports else None
        self.reports = reports

    def results(self, task_name):
        """{host: result} of every run of the task so named, in play order (later runs win)."""
        found = {}
        for play in self.output['plays']:
            for task in play['tasks']:
                if task['task']['name'] == task_name:
                    found.update(task['hosts'])
        return found

    def play_of(self, task_name):
        """The index of the first play holding the task so named."""
        for index, play in enumerate(self.output['plays']):
            if any(task['task']['name'] == task_name for task in play['tasks']):
                return index
        raise AssertionError('no task %r in the run' % task_name)

    def failed_checks(self, host):
        return {c['id']: c for c in self.report['hosts'][host]['checks'] if c['status'] == 'fail'}


@pytest.fixture(scope='module')
def runs():
    return {case: Run(case) for case in ('nvidia_runtime', 'render_group', 'pgvector_stopped', 'pascal_deploy', 'pascal_doctor')}


# ------------------------------------------------------------------ the two converges


def test_each_host_was_converged_twice(converges):
    assert {name: len(records) for name, records in converges.items()} == dict.fromkeys(HOSTS, 2)


@pytest.mark.parametrize('name', HOSTS)
def test_each_host_got_the_runtime_and_the_gpu_its_group_names(converges, name):
    expected = EXPECTED[name]
    for record in converges[name]:
        assert record['gpu_runtime'] == expected['runtime']
        assert record['gpu_vendor'] == expected['runtime']
        assert record['ollama_outlook']['vendor'] == expected['runtime']
        assert record['ollama_outlook']['inference'] == expected['inference']
        assert record['ollama_gpu']['vendor'] == expected['runtime']
        assert record['ollama_gpu']['inference'] == expected['inference']


@pytest.mark.parametrize('name', (NVIDIA, AMD))
def test_a_gpu_host_is_predicted_on_the_gpu_with_no_fallback_reason(converges, name):
    for record in converges[name]:
        assert record['gpu_usable'] is True
        assert record['gpu_warnings'] == []
        assert record['ollama_outlook']['cpu_fallback_reason'] is None
        assert record['ollama_outlook']['causes'] == []
        assert record['ollama_gpu']['cpu_fallback_reason'] is None


def test_the_cpu_host_says_why_ollama_runs_on_the_cpu(converges):
    for record in converges[CPU]:
        assert record['ollama_outlook']['causes'] == ['no_gpu']
        assert 'no GPU found' in record['ollama_gpu']['cpu_fallback_reason']


def test_the_devices_ollama_was_given(converges):
    assert converges[NVIDIA][-1]['ollama_gpu']['devices'] == ['all']
    assert converges[AMD][-1]['ollama_gpu']['devices'] == ['/dev/kfd', '/dev/dri/renderD128', '/dev/dri/renderD129']
    assert converges[CPU][-1]['ollama_gpu']['devices'] == []


@pytest.mark.parametrize('name, ollama_words, models_words', [
    (NVIDIA, '(GPU: nvidia all)', 'preloaded all-minilm:latest on GPU 100%'),
    (AMD, '(GPU: amd /dev/kfd, /dev/dri/renderD128, /dev/dri/renderD129)', 'preloaded all-minilm:latest on GPU 100%'),
    (CPU, '(CPU: no GPU found', 'preloaded all-minilm:latest on CPU'),
])
def test_the_summary_says_where_ollama_and_the_embedding_model_run(converges, name, ollama_words, models_words):
    summary = converges[name][-1]['summary']
    ollama_line = [line for line in summary['services'] if line.startswith('ollama:')]
    assert len(ollama_line) == 1 and ollama_words in ollama_line[0], summary
    assert 'healthy on 127.0.0.1:11434' in ollama_line[0]
    assert any('pgvector' in line and 'table chunks' in line and 'healthy' in line for line in summary['services'])
    assert models_words in summary['models']


@pytest.mark.parametrize('name', HOSTS)
def test_the_embedding_model_is_loaded_where_the_host_computes(converges, name):
    loaded = {model['name']: model for model in converges[name][-1]['ps']}
    assert set(loaded) == {EMBEDDING}
    size, vram = loaded[EMBEDDING]['size'], loaded[EMBEDDING]['size_vram']
    assert size > 0
    assert vram == (size if EXPECTED[name]['inference'] == 'gpu' else 0)


def test_the_doctor_wrote_one_report_per_converge(converge_reports):
    assert len(converge_reports) == 2
    for report in converge_reports:
        assert set(report['hosts']) == set(HOSTS)
        assert report['check_mode'] is False


@pytest.mark.parametrize('name', HOSTS)
def test_the_doctor_is_green_on_each_host_in_both_converges(converge_reports, name):
    for report in converge_reports:
        result = report['hosts'][name]
        assert result['status'] == 'ok', [c for c in result['checks'] if c['status'] != 'ok']
        assert all(c['status'] == 'ok' for c in result['checks'])
        assert result['host']['failed'] == []
        assert result['host']['expected_gpu'] == EXPECTED[name]['runtime']
        assert result['host']['inference'] == EXPECTED[name]['inference']
        assert result['host']['predicted_inference'] == EXPECTED[name]['inference']


@pytest.mark.parametrize('name', HOSTS)
def test_the_doctor_made_the_rag_round_trip_on_each_host(converge_reports, name):
    for report in converge_reports:
        checks = {c['id']: c for c in report['hosts'][name]['checks']}
        trip = checks['rag_round_trip']
        assert trip['status'] == 'ok'
        assert 'embedded with all-minilm:latest (384 dimensions)' in trip['message']
        assert 'nothing kept' in trip['message']
        assert checks['pgvector_dimension']['status'] == 'ok'
        assert 'vector(384)' in checks['pgvector_dimension']['message']
        assert report['hosts'][name]['host']['embedding_dimensions'] == 384


@pytest.mark.parametrize('name', HOSTS)
def test_the_doctor_saw_the_gpu_carry_inference(converge_reports, name):
    for report in converge_reports:
        checks = {c['id']: c for c in report['hosts'][name]['checks']}
        assert EXPECTED[name]['library'] in checks['compute_library']['message']
        gpu_words = '100% GPU' if EXPECTED[name]['inference'] == 'gpu' else '100% CPU'
        assert gpu_words in checks['gpu_inference']['message']
        loaded = report['hosts'][name]['host']['models_loaded']
        assert [m['name'] for m in loaded] == [EMBEDDING]


def test_the_doctor_proved_the_gpu_request_reaches_a_container_on_the_nvidia_host(converge_reports):
    checks = {c['id']: c for c in converge_reports[-1]['hosts'][NVIDIA]['checks']}
    assert checks['nvidia_runtime']['status'] == 'ok'
    assert checks['gpu_probe']['status'] == 'ok'
    assert '/dev/nvidia0' in checks['gpu_probe']['message']
    assert '/dev/nvidia0' in checks['gpu_devices']['message']


def test_the_doctor_checked_the_device_groups_on_the_amd_host(converge_reports):
    checks = {c['id']: c for c in converge_reports[-1]['hosts'][AMD]['checks']}
    assert checks['gpu_devices']['status'] == 'ok'
    assert "with the host's group ids (44, 993)" in checks['gpu_devices']['message']


# ------------------------------------------------------------------ one fault per host


@pytest.mark.parametrize('case', FAULTS)
def test_the_doctor_fails_the_faulty_host_alone(runs, case):
    run, faulty = runs[case], FAULTS[case]
    assert run.record['fault']['host'] == faulty
    assert run.record['rc'] == 2, run.record
    failures = {host: stats['failures'] for host, stats in run.output['stats'].items()}
    assert failures == {host: (1 if host == faulty else 0) for host in HOSTS}
    assert len(run.reports) == 1
    assert {host: result['status'] for host, result in run.report['hosts'].items()} == \
        {host: ('fail' if host == faulty else 'ok') for host in HOSTS}
    for host in HOSTS:
        if host != faulty:
            assert run.failed_checks(host) == {}, host
    # the run failed the host with a message naming each failed check and its cause
    failed = run.results(FAIL_TASK)
    assert failed[faulty]['failed'] is True
    for check in run.failed_checks(faulty).values():
        assert '%s: %s (cause: %s' % (check['id'], check['message'], check['cause']) in failed[faulty]['msg']
    for host in HOSTS:
        if host != faulty:
            assert failed[host].get('skipped') is True, host


def test_nvidia_runtime_removed_is_named_with_its_fix(runs):
    checks = runs['nvidia_runtime'].failed_checks(NVIDIA)
    runtime = checks['nvidia_runtime']
    assert 'nvidia runtime' in runtime['message']
    assert 'runtimes entry' in runtime['cause'] or 'not set up for Docker' in runtime['cause']
    assert 'site.yml --tags gpu' in runtime['fix']
    # the only cause named is the missing runtime: driver 550.54.14 passes Ollama's floors, so no
    # check may tell the user to install another driver
    for check in checks.values():
        assert 'runtime' in check['cause'], check
        assert 'install NVIDIA driver' not in (check['fix'] or ''), check
        assert "below Ollama's floor" not in check['message'], check


def test_render_node_group_changed_is_named_with_its_fix(runs):
    checks = runs['render_group'].failed_checks(AMD)
    assert set(checks) == {'gpu_devices'}
    devices = checks['gpu_devices']
    assert '/dev/dri/renderD128 is group accel (gid 2044) on the host but gid 993 inside ollama' in devices['message']
    assert 'group changed on the host' in devices['cause']
    assert devices['fix']


def test_pgvector_stopped_is_named_with_its_fix(runs):
    checks = runs['pgvector_stopped'].failed_checks(CPU)
    assert set(checks) == {'pgvector_container'}
    container = checks['pgvector_container']
    assert 'pgvector is exited' in container['message']
    assert 'stopped' in container['cause']
    assert container['fix']


# ------------------------------------------------------------------ Pascal on driver 535


PASCAL_CAUSE = 'needs NVIDIA driver 570 or newer'


def test_pascal_is_predicted_as_cpu_fallback_in_preflight_before_anything_is_deployed(runs):
    run = runs['pascal_deploy']
    assert run.record['rc'] == 0, run.record
    facts = run.results("Read the host's GPUs and the few facts the report and the Docker layer need")[NVIDIA]
    outlook = facts['ansible_facts']['ragops_gpu']['ollama_outlook']
    assert outlook['vendor'] == 'nvidia'
    assert outlook['inference'] == 'cpu'
    assert 'nvidia_driver_too_old_for_compute_capability' in outlook['causes']
    assert 'GTX 1080' in outlook['cpu_fallback_reason'] and PASCAL_CAUSE in outlook['cpu_fallback_reason']
    report = run.results('Report the host')[NVIDIA]['msg']
    assert report['gpus'] == '1 nvidia: NVIDIA GeForce GTX 1080'
    assert any('fall back to the CPU' in warning for warning in report['gpu_warnings'])
    # preflight is the first play; the Docker, GPU, services and models layers come after it
    assert run.play_of('Report the host') == 0
    assert run.play_of('ragops.gpu_stack.ollama : Run the Ollama container') > 0


def test_pascal_ollama_container_keeps_the_gpu_and_says_it_falls_back(runs):
    result = runs['pascal_deploy'].results('ragops.gpu_stack.ollama : Run the Ollama container')[NVIDIA]
    gpu = result['gpu']
    assert gpu['vendor'] == 'nvidia'
    assert gpu['devices'] == ['all']
    assert gpu['inference'] == 'cpu'
    assert PASCAL_CAUSE in gpu['cpu_fallback_reason']
    assert any(PASCAL_CAUSE in str(warning) for warning in result.get('warnings', []))


def test_pascal_summary_line_says_ollama_runs_on_the_cpu(runs):
    summary = runs['pascal_deploy'].results('Say what was provisioned')[NVIDIA]['msg']
    ollama_line = [line for line in summary if line.startswith('ollama:')]
    assert len(ollama_line) == 1
    assert 'GPU: nvidia all, but Ollama will run on the CPU' in ollama_line[0]
    assert PASCAL_CAUSE in ollama_line[0]
    assert any(line.startswith('models:') and 'on CPU' in line for line in summary)


def test_pascal_doctor_fails_with_the_driver_floor_as_cause(runs):
    checks = runs['pascal_doctor'].failed_checks(NVIDIA)
    assert {'nvidia_driver', 'gpu_inference'} <= set(checks)
    assert 'driver 535.183.01' in checks['nvidia_driver']['message']
    assert 'GTX 1080 (CC 6.1)' in checks['nvidia_driver']['message']
    assert 'driver 570 or newer' in checks['nvidia_driver']['fix']
    for check in checks.values():
        assert PASCAL_CAUSE in check['cause'], check
    # the model really sits on the CPU, and Ollama's log said why
    assert '100% CPU' in checks['gpu_inference']['message']
    assert 'NVIDIA driver too old' in checks['gpu_inference']['cause']
    host = runs['pascal_doctor'].report['hosts'][NVIDIA]['host']
    assert host['predicted_inference'] == 'cpu'
    assert host['inference'] == 'cpu'
    # the runtime, the devices in the container and the probe are fine: the driver is the cause
    passed = {c['id'] for c in runs['pascal_doctor'].report['hosts'][NVIDIA]['checks'] if c['status'] == 'ok'}
    assert {'nvidia_runtime', 'gpu_probe', 'gpu_devices', 'rag_round_trip'} <= passed


def test_the_doctor_ran_both_ways_a_user_runs_it(runs):
    ways = {case: (runs[case].record['playbook'], runs[case].record['args']) for case in FAULTS}
    assert ways == {
        'nvidia_runtime': ('site.yml', ['--tags', 'verify']),
        'render_group': ('playbooks/verify.yml', []),
        'pgvector_stopped': ('playbooks/verify.yml', []),
        'pascal_doctor': ('site.yml', ['--tags', 'verify']),
    }
