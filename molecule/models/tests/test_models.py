"""The models layer on three instances, each with its own Ollama (the test world's double), whose
upstream counters (GET /_double/stats) say what crossed the "internet": the fleet seeded from one
download, the same digests everywhere, a converged re-run that asks the registry nothing, the
embedding model resident on the GPU or the CPU; then what side_effect.yml did on the CPU host
(latest, a dropped connection, check mode, diff, absent, prune, failures, the CPU warning) and on
the air-gapped one (a half-copied model repaired by seeding), from the evidence it recorded."""
from __future__ import annotations

import datetime
import json

import pytest


GPU, CPU, AIRGAP = 'ragops-models-gpu', 'ragops-models-cpu', 'ragops-models-airgap'
HOSTS = (GPU, CPU, AIRGAP)
MODELS = ('all-minilm:latest', 'qwen2.5:0.5b')
EMBEDDING = 'all-minilm:latest'
STORE = '/var/lib/docker/volumes/ollama/_data/models'
COUNTERS = ('manifest_requests', 'blob_requests', 'bytes_transferred', 'pulls')


def digests(tags):
    return {model['name']: model['digest'] for model in tags}


def counters(stats, model=None):
    source = stats if model is None else stats['models'].get(model, {})
    return {key: source.get(key, 0) for key in COUNTERS}


def delta(case, model=None):
    """What crossed the internet during one side-effect case (after - before)."""
    before, after = counters(case['before']['stats'], model), counters(case['after']['stats'], model)
    return {key: after[key] - before[key] for key in COUNTERS}


def actions(result):
    return {model['name']: model['action'] for model in result['models']}


def manifests(store_lines):
    return [line for line in store_lines if line.startswith('manifests/')]


def api(host, path):
    return json.loads(host.check_output(
        "python3 -c \"import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:11434/%s', timeout=5).read().decode())\"" % path))


def rfc3339(text):
    """Ollama's RFC 3339 time, nanoseconds and all, as an aware datetime."""
    stamp, dummy, fraction = text.rstrip('Z').partition('.')
    return datetime.datetime.fromisoformat(stamp + '.' + (fraction + '000000')[:6]).replace(tzinfo=datetime.timezone.utc)


@pytest.fixture(scope='module')
def fleet(instances):
    """{instance name: testinfra host}, for the checks that compare the three instances."""
    return instances(HOSTS)


@pytest.fixture(scope='module')
def converges(fleet):
    """{instance: [first converge's record, second's]}: converge.yml's lines in /var/tmp/models-converges.jsonl."""
    records = {}
    for name, host in fleet.items():
        lines = host.file('/var/tmp/models-converges.jsonl').content_string.splitlines()
        records[name] = [json.loads(line) for line in lines]
    return records


@pytest.fixture(scope='module')
def evidence(fleet):
    """{instance: side_effect.yml's evidence}, from /var/tmp/models-side-effect.json."""
    return {name: json.loads(host.file('/var/tmp/models-side-effect.json').content_string)
            for name, host in fleet.items()}


# ------------------------------------------------------------------ the two converges


def test_each_host_was_converged_twice(converges):
    assert {name: len(records) for name, records in converges.items()} == {name: 2 for name in HOSTS}


def manifest_blobs(host, model):
    """{digest: size} of every blob (config and layers) the model's manifest on the host names."""
    path = '%s/manifests/registry.ollama.ai/library/%s' % (STORE, model.replace(':', '/'))
    doc = json.loads(host.file(path).content_string)
    return {blob['digest']: blob['size'] for blob in [doc['config']] + doc['layers']}


def test_first_converge_downloaded_each_model_once_for_the_whole_fleet(converges, fleet):
    first = {name: records[0] for name, records in converges.items()}
    assert set(digests(first[GPU]['tags'])) == set(MODELS)
    # each distinct blob of the two models once (they share a license blob, which Ollama fetches once)
    blobs = {}
    for model in MODELS:
        blobs.update(manifest_blobs(fleet[GPU], model))
    # 1 x across the three doubles, not 3 x: the seed host's download only
    assert sum(first[name]['stats']['bytes_transferred'] for name in HOSTS) == sum(blobs.values())
    assert {model: counters(first[GPU]['stats'], model)['pulls'] for model in MODELS} == {model: 1 for model in MODELS}
    for name in (CPU, AIRGAP):
        assert counters(first[name]['stats']) == dict.fromkeys(COUNTERS, 0), name


def test_every_host_lists_the_same_digests(converges):
    listed = {name: digests(records[0]['tags']) for name, records in converges.items()}
    assert set(listed[GPU]) == set(MODELS)
    assert listed[CPU] == listed[GPU]
    assert listed[AIRGAP] == listed[GPU]


def test_the_air_gapped_host_got_its_models_from_the_cache_alone(converges, fleet):
    # its Ollama cannot reach the registry at all, and it asked nothing of it
    assert api(fleet[AIRGAP], '_double/faults')['unreachable'] is True
    first = converges[AIRGAP][0]
    assert counters(first['stats']) == dict.fromkeys(COUNTERS, 0)
    assert set(digests(first['tags'])) == set(MODELS)


def test_second_converge_changed_nothing_and_asked_the_registry_nothing(converges):
    for name, (first, second) in converges.items():
        assert second['result']['changed'] is False, name
        assert actions(second['result']) == dict.fromkeys(MODELS, 'present'), name
        assert counters(second['stats']) == counters(first['stats']), name
        assert digests(second['tags']) == digests(first['tags']), name


def test_summary_line_names_each_model_its_digest_and_where_the_embedding_model_sits(converges):
    for name, records in converges.items():
        second = records[1]
        listed = digests(second['tags'])
        where = 'on GPU 100%' if name == GPU else 'on CPU'
        assert second['summary'] == 'models: all-minilm:latest present (%s), qwen2.5:0.5b present (%s); preloaded %s %s' % (
            listed['all-minilm:latest'][:12], listed['qwen2.5:0.5b'][:12], EMBEDDING, where), name


# ------------------------------------------------------------------ preload and residency


@pytest.mark.parametrize('name, on_gpu', [(GPU, True), (CPU, False), (AIRGAP, False)])
def test_the_embedding_model_is_resident_with_its_keep_alive(fleet, name, on_gpu):
    loaded = {model['name']: model for model in api(fleet[name], 'api/ps')['models']}
    assert EMBEDDING in loaded and 'qwen2.5:0.5b' not in loaded  # only the preloaded one
    entry = loaded[EMBEDDING]
    # keep_alive 2h from the list, not the server's 24h (OLLAMA_KEEP_ALIVE of the ollama role)
    left = rfc3339(entry['expires_at']) - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(hours=1) < left <= datetime.timedelta(hours=2)
    if on_gpu:
        assert entry['size_vram'] == entry['size'] > 0
    else:
        assert entry['size_vram'] == 0 and entry['size'] > 0


def test_the_result_says_where_each_preloaded_model_sits(converges):
    for name, records in converges.items():
        first = records[0]
        loaded = {model['name']: model['loaded'] for model in first['result']['models']}
        assert loaded['qwen2.5:0.5b'] is None
        assert loaded[EMBEDDING]['processor'] == ('100% GPU' if name == GPU else '100% CPU'), name


def test_the_cpu_warning_appears_only_where_a_gpu_is_expected(converges, evidence):
    # the faked NVIDIA host expects a GPU and has one; the others expect none
    for name, records in converges.items():
        for record in records:
            assert record['result']['warnings'] == [], name
    warned = evidence[CPU]['cpu_warning']
    assert warned['failed'] is False
    assert [w for w in warned['result']['warnings'] if EMBEDDING in w and 'CPU' in w], warned['result']


# ------------------------------------------------------------------ side effects on the CPU host


def test_latest_after_the_upstream_moved_fetches_only_the_new_blobs(evidence):
    case, manifest = evidence[CPU]['latest'], evidence[CPU]['qwen_manifest']
    assert case['failed'] is False and case['result']['changed'] is True
    assert actions(case['result']) == {'qwen2.5:0.5b': 'updated'}
    before, after = case['before']['tags'], case['after']['tags']
    assert after['qwen2.5:0.5b'] != before['qwen2.5:0.5b']
    assert after[EMBEDDING] == before[EMBEDDING]

    def blobs(doc):
        return {blob['digest']: blob['size'] for blob in [doc['config']] + doc['layers']}

    old, new = blobs(manifest['before']), blobs(manifest['after'])
    fresh = {digest: size for digest, size in new.items() if digest not in old}
    assert 0 < len(fresh) < len(new)  # the model layer and config moved, the template and license did not
    moved = delta(case)
    assert moved['blob_requests'] == len(fresh)
    assert moved['bytes_transferred'] == sum(fresh.values())


def test_latest_again_asks_the_registry_and_changes_nothing(evidence):
    case = evidence[CPU]['latest_again']
    assert case['failed'] is False and case['result']['changed'] is False
    assert actions(case['result']) == {'qwen2.5:0.5b': 'unchanged'}
    assert delta(case) == {'manifest_requests': 1, 'blob_requests': 0, 'bytes_transferred': 0, 'pulls': 1}
    assert case['after']['tags'] == case['before']['tags']


def test_a_connection_dropped_mid_blob_is_retried_and_resumed(evidence):
    case = evidence[CPU]['dropped']
    assert case['failed'] is False and case['result']['changed'] is True
    pulled = {model['name']: model for model in case['result']['models']}['llama3.2:1b']
    assert pulled['action'] == 'pulled' and pulled['attempts'] == 2
    moved = delta(case, 'llama3.2:1b')
    assert moved['pulls'] == 2
    size = case['after']['sizes']['llama3.2:1b']
    refetched = moved['bytes_transferred'] - size
    # the re-issued pull resumed the partial blob: what crossed twice is a small fraction of it
    assert 0 <= refetched < size // 10, moved
    assert actions(case['result'])[EMBEDDING] == 'present'


def test_check_mode_reports_the_plan_and_changes_nothing(evidence):
    case = evidence[CPU]['check_mode']
    assert case['failed'] is False and case['result']['changed'] is True
    assert actions(case['result']) == {
        EMBEDDING: 'present', 'qwen2.5:0.5b': 'present', 'llama3.2:1b': 'would_remove',
        'mxbai-embed-large:latest': 'would_pull'}
    # every file of the model store as it was (size, mtime, sha256), and nothing asked upstream
    assert case['after']['store'] == case['before']['store']
    assert counters(case['after']['stats']) == counters(case['before']['stats'])
    diff = case['result']['diff']
    before = [model['name'] for model in diff['before']['models']]
    after = [model['name'] for model in diff['after']['models']]
    assert 'llama3.2:1b' in before and 'llama3.2:1b' not in after
    assert 'mxbai-embed-large:latest' in after and 'mxbai-embed-large:latest' not in before


def test_absent_removes_the_model_and_then_is_no_change(evidence):
    case, again = evidence[CPU]['absent'], evidence[CPU]['absent_again']
    assert case['failed'] is False and case['result']['changed'] is True
    assert actions(case['result']) == {'llama3.2:1b': 'removed'}
    assert 'llama3.2:1b' in case['before']['tags'] and 'llama3.2:1b' not in case['after']['tags']
    diff = case['result']['diff']
    assert [m['name'] for m in diff['before']['models'] if m['name'] == 'llama3.2:1b'] == ['llama3.2:1b']
    assert 'llama3.2:1b' not in [m['name'] for m in diff['after']['models']]
    remaining = {name: digest for name, digest in case['before']['tags'].items() if name != 'llama3.2:1b'}
    assert case['after']['tags'] == remaining
    assert again['failed'] is False and again['result']['changed'] is False
    assert actions(again['result']) == {'llama3.2:1b': 'absent'}


def test_prune_removes_the_model_nobody_listed(evidence):
    case = evidence[CPU]['prune']
    assert 'by-hand:latest' in case['before']['tags']
    assert case['failed'] is False and case['result']['changed'] is True
    assert case['result']['removed'] == ['by-hand:latest']
    assert case['after']['tags'] == {name: case['before']['tags'][name] for name in MODELS}


@pytest.mark.parametrize('case_name, words', [
    ('unknown', ['nosuch-model:7b', 'no such model or tag', 'file does not exist', 'Fix:']),
    ('invalid', ['hf.co/repo', 'invalid model name', 'Fix:', '[set by the role variable ollama_models_list]']),
    ('unreachable', ['mxbai-embed-large:latest', 'cannot reach the registry', 'no such host', 'ollama_models_seed']),
    ('newer_version', ['mxbai-embed-large:latest', 'needs a newer Ollama', '0.33.0', 'ollama_image']),
    ('disk_full', ['mxbai-embed-large:latest', 'no space left on device', 'Fix:']),
    ('ollama_down', ['127.0.0.1:11499', 'not answering', 'Fix:', '[set by the role variable ollama_models_api_url]']),
])
def test_a_failure_names_the_model_and_the_fix_and_leaves_the_models_alone(evidence, case_name, words):
    case = evidence[CPU][case_name]
    assert case['failed'] is True
    for word in words:
        assert word in case['msg'], (word, case['msg'])
    assert case['after']['tags'] == case['before']['tags']
    assert set(case['after']['tags']) == set(MODELS)
    assert manifests(case['after']['store']) == manifests(case['before']['store'])


def test_an_invalid_name_fails_before_anything_is_sent(evidence):
    case = evidence[CPU]['invalid']
    assert counters(case['after']['stats']) == counters(case['before']['stats'])
    assert case['after']['store'] == case['before']['store']


# ------------------------------------------------------------------ seeding repairs a half-copied model


def test_a_half_copied_model_is_detected_and_repaired_by_seeding(evidence, fleet):
    manifest_path = 'manifests/registry.ollama.ai/library/all-minilm/latest'
    manifest = json.loads(fleet[AIRGAP].file('%s/%s' % (STORE, manifest_path)).content_string)
    layer = [blob for blob in manifest['layers'] if blob['mediaType'].endswith('.model')][0]
    blob_path = 'blobs/' + layer['digest'].replace(':', '-')
    case = evidence[AIRGAP]['seed_repair']
    assert case['failed'] is False

    def store_entry(store, path):
        return {line.split()[0]: line.split()[1:] for line in store}.get(path)

    # planted: the blob short, the manifest gone, so Ollama did not list the model
    assert store_entry(case['before']['store'], blob_path)[0] == str(layer['size'] // 2)
    assert store_entry(case['before']['store'], manifest_path) is None
    assert EMBEDDING not in case['before']['tags']
    # repaired: the whole blob with its sha256, then the manifest, listed with the fleet's digest
    size, dummy, sha256 = store_entry(case['after']['store'], blob_path)
    assert (int(size), 'sha256:' + sha256) == (layer['size'], layer['digest'])
    assert case['after']['tags'] == evidence[GPU]['seed_repair']['after']['tags']
    # from the cache: nothing crossed the internet on any host, and the others were left alone
    for name in HOSTS:
        assert delta(evidence[name]['seed_repair']) == dict.fromkeys(COUNTERS, 0), name
    for name in (GPU, CPU):
        other = evidence[name]['seed_repair']
        assert other['after']['store'] == other['before']['store'], name
