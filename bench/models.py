"""Benchmark: the ollama_models role on 1 and 3 hosts, with and without fleet seeding.

Each "host" is an inventory host on this machine (local connection) with an Ollama of its own:
the test world's Ollama API double (tests/world/ollama_double, NOT Ollama), each with its own
model store and its own upstream, whose counters (GET /_double/stats) say how many bytes came
from "the internet". The upstream is throttled (--rate, bytes per second per host) so that
downloads cost time as they would; the local copies of seeding are not throttled. Measured per
case: the converge's wall time, the upstream bytes summed over the hosts, then a converged
re-run's wall time and the time of its model tasks (ansible.posix.profile_tasks).

    .venv/bin/python bench/models.py [--rate BYTES_PER_S] [--reruns N]

Figures and their context: bench/README.md. Results also go to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
DOUBLE = REPO / 'tests' / 'world' / 'ollama_double' / 'ollama_double.py'
MODELS = ['all-minilm', {'name': 'nomic-embed-text', 'preload': True}, 'qwen2.5:0.5b']

PLAYBOOK = """---
- name: Bench - the models layer
  hosts: all
  gather_facts: false
  roles:
    - role: ragops.gpu_stack.ollama_models
"""


def start_double(store, rate):
    env = dict(os.environ, OLLAMA_DOUBLE_RATE=str(rate), OLLAMA_NOPRUNE='1')
    proc = subprocess.Popen([sys.executable, str(DOUBLE), 'serve', '--port', '0', '--models', str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    url = proc.stdout.readline().strip()
    for dummy in range(100):
        try:
            requests.get(url + '/api/version', timeout=2)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError('the double did not start')


def run_playbook(workdir, inventory):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_CALLBACKS_ENABLED='ansible.posix.profile_tasks',
               PROFILE_TASKS_SORT_ORDER='none', PROFILE_TASKS_TASK_OUTPUT_LIMIT='all')
    start = time.monotonic()
    proc = subprocess.run([str(REPO / '.venv' / 'bin' / 'ansible-playbook'), '-i', str(inventory), str(workdir / 'play.yml')],
                          cwd=str(REPO), env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-2000:])
        raise RuntimeError('ansible-playbook failed')
    changed = sum(int(n) for n in re.findall(r'changed=(\d+)', proc.stdout.split('PLAY RECAP')[-1]))
    # profile_tasks lines: "Role | task name ------ 0.12s"
    model_tasks = sum(float(s) for s in re.findall(r'ollama_models : [^\n]*?-+ (\d+\.\d+)s', proc.stdout))
    return wall, changed, model_tasks


def case(hosts, seed, rate, reruns):
    workdir = Path(tempfile.mkdtemp(prefix='bench-models-'))
    doubles = []
    try:
        lines = ['all:', '  hosts:']
        for index in range(hosts):
            store = workdir / ('h%d' % index) / 'models'
            (store / 'blobs').mkdir(parents=True)
            proc, url = start_double(store, rate)
            doubles.append((proc, url))
            lines += ['    h%d:' % index, '      ansible_connection: local',
                      '      ansible_python_interpreter: %s' % sys.executable,
                      '      ollama_models_api_url: %s' % url, '      ollama_models_store: %s' % store]
        lines += ['  vars:', '    ollama_models_list: %s' % json.dumps(MODELS),
                  '    ollama_models_seed: %s' % ('true' if seed else 'false'),
                  '    ollama_models_seed_host: h0', '    ollama_models_seed_cache: %s' % (workdir / 'cache')]
        inventory = workdir / 'hosts.yml'
        inventory.write_text('\n'.join(lines) + '\n', encoding='utf-8')
        (workdir / 'play.yml').write_text(PLAYBOOK, encoding='utf-8')
        wall, changed, dummy = run_playbook(workdir, inventory)
        upstream = sum(requests.get(url + '/_double/stats', timeout=5).json()['bytes_transferred'] for dummy, url in doubles)
        requests_before = sum(requests.get(url + '/_double/stats', timeout=5).json()['manifest_requests'] for dummy, url in doubles)
        reruns_out = [run_playbook(workdir, inventory) for dummy in range(reruns)]
        requests_after = sum(requests.get(url + '/_double/stats', timeout=5).json()['manifest_requests'] for dummy, url in doubles)
        return dict(hosts=hosts, seed=seed, converge_s=round(wall, 2), converge_changed=changed, upstream_bytes=upstream,
                    rerun_s=[round(r[0], 2) for r in reruns_out], rerun_changed=[r[1] for r in reruns_out],
                    rerun_model_tasks_s=[round(r[2], 2) for r in reruns_out],
                    rerun_upstream_requests=requests_after - requests_before)
    finally:
        for proc, dummy in doubles:
            proc.terminate()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rate', type=int, default=500_000, help='upstream bytes per second per host (default 500000)')
    parser.add_argument('--reruns', type=int, default=3)
    args = parser.parse_args()
    # The models' size, from one double that pulls them (every double serves the same bytes).
    probe_dir = Path(tempfile.mkdtemp(prefix='bench-models-size-'))
    proc, url = start_double(probe_dir, 0)
    try:
        for model in MODELS:
            name = model['name'] if isinstance(model, dict) else model
            requests.post(url + '/api/pull', json={'model': name, 'stream': False}, timeout=60).raise_for_status()
        size = sum(m['size'] for m in requests.get(url + '/api/tags', timeout=5).json()['models'])
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(probe_dir, ignore_errors=True)
    head = '# %s %d cores, load %s, %s; 3 models, %d bytes in all; upstream %d B/s per host' % (
        datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'), os.cpu_count(),
        open('/proc/loadavg', encoding='ascii').read().split()[0],
        subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=str(REPO), capture_output=True, text=True,
                       check=False).stdout.strip(), size, args.rate)
    out_lines = [head]
    print(head, flush=True)
    for hosts, seed in ((1, False), (3, False), (3, True)):
        row = case(hosts, seed, args.rate, args.reruns)
        row['upstream_x_model_size'] = round(row['upstream_bytes'] / size, 2)
        line = json.dumps(row)
        print(line, flush=True)
        out_lines.append(line)
    results = REPO / 'bench' / 'results'
    results.mkdir(parents=True, exist_ok=True)
    path = results / ('models-%s.txt' % datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ'))
    path.write_text('\n'.join(out_lines) + '\n', encoding='utf-8')
    print('results: %s' % path)


if __name__ == '__main__':
    main()
