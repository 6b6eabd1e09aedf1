"""Benchmark: site.yml against the usual way of writing the same stack (bench/baseline/site.yml).

Each round starts two identical fresh sandbox hosts (scripts/sandbox.sh's image and flags:
Debian 12 systemd containers of the test world, reached with community.docker.docker),
ragops-bench-site-R and ragops-bench-base-R, and then, alternating which goes first:
  - full converge on the fresh host: site.yml, and the baseline (as the roles ship, unless
    --converge-profile tuned);
  - converged re-runs (--reruns of each, in rotating order): site.yml, the baseline tuned
    (pipelining on, no fact gathering where possible) and the baseline as the roles ship (all
    facts, no pipelining);
  - the doctor on its own on the converged site host: `site.yml --tags verify`, when
    playbooks/verify.yml exists (else "n/a"), and the baseline's own check (`--tags check`, tuned).
Both get the sandbox inventory's variables (inventories/sandbox/group_vars: the password, the
same models). Only ansible-playbook is timed, never the host's start. Prints the medians and the
ratios site/baseline against the issue's targets, keeps the figures under bench/results/.

    .venv/bin/python bench/vs_usual.py [ROUNDS] [--reruns K] [--converge-profile shipped|tuned] [--keep]

ROUNDS defaults to 3 and --reruns to 3. Every container it starts is removed at the end (or
on Ctrl-C / SIGTERM) unless --keep. Figures and their context: bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANSIBLE_PLAYBOOK = REPO / '.venv' / 'bin' / 'ansible-playbook'
SITE = REPO / 'site.yml'
BASELINE = REPO / 'bench' / 'baseline' / 'site.yml'
VERIFY = REPO / 'playbooks' / 'verify.yml'
SANDBOX_GROUP_VARS = REPO / 'inventories' / 'sandbox' / 'group_vars'
IMAGE = os.environ.get('RAGOPS_WORLD_HOST_IMAGE', 'ragops-world/debian12-systemd:latest')
REGISTRY = 'registry.local:5000'

# The targets (issue 10, "Benchmark"): site/baseline ratios.
TARGET_CONVERGE = 1.0
TARGET_RERUN_TUNED = 0.35

STARTED = set()


def log(message):
    sys.stderr.write('bench: %s\n' % message)
    sys.stderr.flush()


def docker(*args, check=True):
    return subprocess.run(['docker', *args], capture_output=True, text=True, check=check)


def start_host(name):
    """A fresh sandbox host, as scripts/sandbox.sh starts one (same image and flags), booted and prepared."""
    docker('rm', '-f', '-v', name, check=False)
    STARTED.add(name)
    # The flags that let systemd and a nested Docker engine run here (scripts/sandbox.sh).
    docker('run', '-d', '--name', name, '--hostname', name,
           '--cap-add', 'SYS_ADMIN', '--cap-add', 'NET_ADMIN', '--cap-add', 'SYS_PTRACE',
           '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined',
           '--cgroupns', 'host', '-v', '/sys/fs/cgroup:/sys/fs/cgroup:rw', '-v', '/var/lib/docker',
           '--tmpfs', '/run', '--tmpfs', '/run/lock', '-e', 'container=docker',
           '--add-host', REGISTRY.split(':', maxsplit=1)[0] + ':host-gateway',
           IMAGE, '/lib/systemd/systemd')


def prepare_host(name):
    """Waits for systemd, then the same preparation as scripts/sandbox.sh, on every host alike."""
    state = 'unknown'
    for dummy in range(240):
        state = docker('exec', name, 'systemctl', 'is-system-running', check=False).stdout.strip()
        if state in ('running', 'degraded'):
            break
        time.sleep(0.5)
    else:
        raise RuntimeError('%s: systemd did not finish booting (%s)' % (name, state))
    # The sandbox's Docker pulls through the test world's registry (scripts/sandbox.sh writes this).
    daemon_json = '{"registry-mirrors": ["http://%s"], "insecure-registries": ["%s"]}' % (REGISTRY, REGISTRY)
    # The image's emptied apt lists carry the image's build time, which apt's cache_valid_time takes
    # for a fresh cache (ENVIRONMENT.md); a real fresh host's lists are absent or old. Dated back
    # on every host alike: site.yml does not read it, the baseline's "Update apt cache" does.
    docker('exec', name, 'sh', '-c',
           'mkdir -p /etc/docker && printf "%%s\\n" \'%s\' >/etc/docker/daemon.json && touch -d "2 hours ago" /var/lib/apt/lists'
           % daemon_json)


def remove_hosts(names=None):
    for name in sorted(names if names is not None else STARTED):
        docker('rm', '-f', '-v', name, check=False)
        STARTED.discard(name)


def write_inventory(directory, names):
    """An inventory of these hosts with the sandbox's group_vars (the same variables site.yml's sandbox run has)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = ['---', 'all:', '  hosts:']
    for name in names:
        lines += ['    %s:' % name, '      ansible_connection: community.docker.docker',
                  '      ansible_host: %s' % name, '      ansible_python_interpreter: /usr/bin/python3']
    (directory / 'hosts.yml').write_text('\n'.join(lines) + '\n')
    link = directory / 'group_vars'
    if not link.exists():
        link.symlink_to(SANDBOX_GROUP_VARS)
    return directory


def cpu_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open('/proc/stat') as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def run_playbook(playbook, inventory, *args, env=None):
    """Runs ansible-playbook; returns its wall time, the controller's CPU time (user+sys of
    ansible-playbook and everything it started: its forks, the docker exec clients) and the recap."""
    environ = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1', **(env or {}))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, total0 = cpu_busy()
    start = time.monotonic()
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), '-i', str(inventory), str(playbook), *args],
                          cwd=str(REPO), env=environ, capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    busy1, total1 = cpu_busy()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    recap = proc.stdout.split('PLAY RECAP')[-1] if 'PLAY RECAP' in proc.stdout else ''
    counts = {key: sum(int(n) for n in re.findall(r'\b%s=(\d+)' % key, recap))
              for key in ('ok', 'changed', 'failed', 'unreachable', 'skipped')}
    result = dict(wall=wall, cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                  machine_busy=(busy1 - busy0) / max(total1 - total0, 1), rc=proc.returncode, **counts)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-6000:] + proc.stderr[-3000:])
        raise RuntimeError('ansible-playbook %s failed (rc %d)' % (Path(playbook).name, proc.returncode))
    return result


def ensure_world():
    """The checkout's set-up and the test world (both idempotent), as scripts/sandbox.sh does."""
    if not ANSIBLE_PLAYBOOK.exists():
        subprocess.run([str(REPO / 'scripts' / 'setup.sh')], check=True)
    subprocess.run([str(REPO / 'tests' / 'world' / 'world.sh'), 'up'], check=True, stdout=sys.stderr)


def install_signal_cleanup():
    """SIGTERM and SIGHUP end the run through the same finally blocks as Ctrl-C, so the hosts are removed."""
    def handler(signum, frame):
        raise SystemExit('bench: interrupted (signal %d)' % signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def machine_line():
    def git(*args):
        return subprocess.run(['git', *args], cwd=str(REPO), capture_output=True, text=True, check=False).stdout.strip()
    head = git('rev-parse', '--short', 'HEAD')
    dirty = ' (with uncommitted changes)' if git('status', '--porcelain') else ''
    with open('/proc/loadavg') as handle:
        load = ' '.join(handle.read().split()[:3])
    return '%s, %s%s, %d cores, load %s' % (datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ'),
                                            head, dirty, os.cpu_count(), load)


def median(values):
    return statistics.median(values) if values else None


def fmt(value, unit=' s'):
    return 'n/a' if value is None else '%.2f%s' % (value, unit)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('rounds', nargs='?', type=int, default=3, help='rounds, each on two fresh hosts (default 3)')
    parser.add_argument('--reruns', type=int, default=3, help='converged re-runs of each per round (default 3)')
    parser.add_argument('--converge-profile', choices=['shipped', 'tuned'], default='shipped',
                        help="the baseline's profile for the full converge (default: as the roles ship)")
    parser.add_argument('--keep', action='store_true', help='leave the last round\'s hosts running')
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.reruns < 1:
        parser.error('rounds and --reruns must be at least 1')

    ensure_world()
    install_signal_cleanup()
    workdir = Path(tempfile.mkdtemp(prefix='bench-vs-usual-'))
    doctor = VERIFY.exists()
    site_has_doctor = 'verify.yml' in SITE.read_text()
    # The doctor's JSON reports go to the run's own temporary folder, not the checkout.
    site_extra = ['-e', 'gpu_stack_verify_report_dir=%s' % (workdir / 'doctor-reports')]
    profiles = {
        'site': (SITE, site_extra, {}),
        'tuned': (BASELINE, ['-e', 'baseline_profile=tuned'], {}),
        # As the roles ship: Ansible's default, no pipelining (this repository's ansible.cfg turns it on).
        'shipped': (BASELINE, ['-e', 'baseline_profile=shipped'], {'ANSIBLE_PIPELINING': 'False'}),
    }
    samples = {key: [] for key in ('converge_site', 'converge_base', 'rerun_site', 'rerun_tuned', 'rerun_shipped',
                                   'doctor_site', 'check_base')}
    raw = []
    header = '# vs_usual: %s; %d round(s), %d re-run(s) each; baseline converge profile %s; site.yml imports the doctor: %s' % (
        machine_line(), args.rounds, args.reruns, args.converge_profile, 'yes' if site_has_doctor else 'no')
    log(header)

    def record(key, label, result):
        samples[key].append(result['wall'])
        line = '%-44s %7.2f s  cpu %6.2f s  changed=%d' % (label, result['wall'], result['cpu'], result['changed'])
        raw.append(line)
        log(line)
        return result

    try:
        for rnd in range(1, args.rounds + 1):
            site_host, base_host = 'ragops-bench-site-%d' % rnd, 'ragops-bench-base-%d' % rnd
            for name in (site_host, base_host):
                start_host(name)
            for name in (site_host, base_host):
                prepare_host(name)
            site_inv = write_inventory(workdir / ('site-%d' % rnd), [site_host])
            base_inv = write_inventory(workdir / ('base-%d' % rnd), [base_host])
            order = ['site', 'base'] if rnd % 2 else ['base', 'site']
            for which in order:
                if which == 'site':
                    record('converge_site', 'round %d converge site.yml' % rnd, run_playbook(SITE, site_inv, *site_extra))
                else:
                    playbook, extra, env = profiles[args.converge_profile]
                    record('converge_base', 'round %d converge baseline (%s)' % (rnd, args.converge_profile),
                           run_playbook(playbook, base_inv, *extra, env=env))
            kinds = ['site', 'tuned', 'shipped', 'doctor', 'check']
            for rerun in range(args.reruns):
                shift = (rnd + rerun) % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    if kind == 'doctor':
                        if doctor:
                            record('doctor_site', 'round %d site.yml --tags verify' % rnd,
                                   run_playbook(SITE, site_inv, '--tags', 'verify', *site_extra))
                        continue
                    if kind == 'check':
                        record('check_base', 'round %d baseline --tags check (tuned)' % rnd,
                               run_playbook(BASELINE, base_inv, '--tags', 'check', *profiles['tuned'][1]))
                        continue
                    playbook, extra, env = profiles[kind]
                    result = run_playbook(playbook, site_inv if kind == 'site' else base_inv, *extra, env=env)
                    record('rerun_' + kind, 'round %d re-run %s' % (rnd, 'site.yml' if kind == 'site' else 'baseline ' + kind),
                           result)
                    if kind == 'site' and result['changed']:
                        raw.append('  NOTE: site.yml re-run reported changed=%d (a converged re-run must say 0)' % result['changed'])
                        log(raw[-1])
            if not (args.keep and rnd == args.rounds):
                remove_hosts([site_host, base_host])
    finally:
        if not args.keep:
            remove_hosts()
        shutil.rmtree(workdir, ignore_errors=True)

    med = {key: median(values) for key, values in samples.items()}

    def ratio(a, b):
        return None if med[a] is None or med[b] is None else med[a] / med[b]

    def verdict(value, target):
        return 'n/a' if value is None else ('met' if value <= target else 'NOT met')

    rows = [
        ('full converge (fresh host), baseline %s' % args.converge_profile, med['converge_site'], med['converge_base'],
         ratio('converge_site', 'converge_base'), '<= %.2fx' % TARGET_CONVERGE,
         verdict(ratio('converge_site', 'converge_base'), TARGET_CONVERGE)),
        ('converged re-run vs the tuned baseline', med['rerun_site'], med['rerun_tuned'], ratio('rerun_site', 'rerun_tuned'),
         '<= %.2fx' % TARGET_RERUN_TUNED, verdict(ratio('rerun_site', 'rerun_tuned'), TARGET_RERUN_TUNED)),
        ('converged re-run vs the baseline as shipped', med['rerun_site'], med['rerun_shipped'], ratio('rerun_site', 'rerun_shipped'),
         '-', '-'),
        ('the doctor alone (site.yml --tags verify) vs the baseline check alone', med['doctor_site'], med['check_base'],
         ratio('doctor_site', 'check_base'), 'reported on its own', '-'),
    ]
    n_conv = len(samples['converge_site'])
    table = ['', header,
             'medians of %d converge(s) and %d re-run(s) each; every sample above' % (n_conv, len(samples['rerun_site'])),
             '',
             '| measure | site.yml | baseline | site/baseline | target | |',
             '|---|---|---|---|---|---|']
    for label, site_value, base_value, ratio_value, target, met in rows:
        table.append('| %s | %s | %s | %s | %s | %s |' % (
            label, fmt(site_value), fmt(base_value), fmt(ratio_value, 'x'), target, met))
    if not doctor:
        table.append('(playbooks/verify.yml does not exist yet: the doctor is n/a)')
    if not site_has_doctor:
        table.append('(site.yml does not import the doctor yet: its converge and re-runs are without it; the baseline has its check)')
    print('\n'.join(raw + table))
    out_dir = REPO / 'bench' / 'results'
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    (out_dir / ('vs_usual-%s.txt' % stamp)).write_text('\n'.join(raw + table) + '\n')
    (out_dir / ('vs_usual-%s.json' % stamp)).write_text(json.dumps(dict(header=header, samples=samples, medians=med), indent=1) + '\n')
    print('results: %s' % (out_dir / ('vs_usual-%s.txt' % stamp)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
