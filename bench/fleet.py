"""Benchmark: a converged re-run of site.yml on fleets of 1, 3 and 6 sandbox hosts.

Starts the largest fleet's hosts at once (ragops-bench-fleet-1..M: the sandbox's image and
flags, as bench/vs_usual.py starts them), converges them all with one site.yml run (reported,
not a target), then re-runs site.yml on the first 1, 3, ... M of them (one inventory per size),
ROUNDS times in rotating order, at the default forks (ansible.cfg's). Each run is timed, and so
is the controller's CPU: user+sys of ansible-playbook and every process it started (its forks,
the `docker exec` clients of the docker connection), from getrusage(RUSAGE_CHILDREN); with the
machine's CPU busy share over the run (/proc/stat) it says whether the controller is the
bottleneck. On these machines the hosts are containers on the controller's own cores, so a
saturated machine is not the controller alone: the verdict says which.

    .venv/bin/python bench/fleet.py [ROUNDS] [--sizes 1,3,6] [--keep]

ROUNDS defaults to 3. Prints the medians per fleet size and the largest/smallest ratio against
the issue's target (6 hosts in at most 2x the time of one); keeps them under bench/results/.
Every container it starts is removed at the end (or on Ctrl-C / SIGTERM) unless --keep.
"""

from __future__ import annotations

import argparse
import configparser
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import vs_usual  # noqa: E402  (the sandbox hosts and the timed run are that script's)

TARGET_RATIO = 2.0
# Controller-bound when its processes kept at least this share of the machine's cores busy.
CONTROLLER_BOUND_SHARE = 0.75
MACHINE_SATURATED = 0.90


def default_forks():
    config = configparser.ConfigParser()
    config.read(vs_usual.REPO / 'ansible.cfg')
    return config.getint('defaults', 'forks', fallback=5)


def verdict(wall, cpu, busy, cores):
    """What bounds a run: the controller, the machine as a whole (hosts and other load on the same cores), or neither."""
    if wall and cpu / wall >= CONTROLLER_BOUND_SHARE * cores:
        return 'the controller'
    if busy >= MACHINE_SATURATED:
        return 'the machine, not the controller alone'
    return 'neither: waiting on the hosts'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n', maxsplit=1)[0])
    parser.add_argument('rounds', nargs='?', type=int, default=3, help='re-runs of each fleet size (default 3)')
    parser.add_argument('--sizes', default='1,3,6', help='fleet sizes, comma-separated (default 1,3,6)')
    parser.add_argument('--keep', action='store_true', help='leave the hosts running')
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(',') if s.strip()})
    if args.rounds < 1 or not sizes or sizes[0] < 1:
        parser.error('ROUNDS and every size must be at least 1')

    vs_usual.ensure_world()
    vs_usual.install_signal_cleanup()
    cores = os.cpu_count() or 1
    forks = default_forks()
    header = '# fleet: %s; sizes %s, %d round(s), forks %d (ansible.cfg); site.yml imports the doctor: %s' % (
        vs_usual.machine_line(), ','.join(map(str, sizes)), args.rounds, forks,
        'yes' if 'verify.yml' in vs_usual.SITE.read_text() else 'no')
    vs_usual.log(header)
    workdir = Path(tempfile.mkdtemp(prefix='bench-fleet-'))
    extra = ['-e', 'gpu_stack_verify_report_dir=%s' % (workdir / 'doctor-reports')]
    names = ['ragops-bench-fleet-%d' % i for i in range(1, sizes[-1] + 1)]
    samples = {size: [] for size in sizes}
    raw = []
    try:
        for name in names:
            vs_usual.start_host(name)
        for name in names:
            vs_usual.prepare_host(name)
        inventories = {size: vs_usual.write_inventory(workdir / ('fleet-%d' % size), names[:size]) for size in sizes}
        result = vs_usual.run_playbook(vs_usual.SITE, inventories[sizes[-1]], *extra)
        raw.append('converge of all %d hosts at once: %.2f s, controller cpu %.2f s, changed=%d (not a target)'
                   % (len(names), result['wall'], result['cpu'], result['changed']))
        vs_usual.log(raw[-1])
        for rnd in range(args.rounds):
            shift = rnd % len(sizes)
            for size in sizes[shift:] + sizes[:shift]:
                result = vs_usual.run_playbook(vs_usual.SITE, inventories[size], *extra)
                samples[size].append(result)
                raw.append('round %d, %d host(s): %7.2f s  controller cpu %6.2f s  machine busy %3.0f%%  changed=%d'
                           % (rnd + 1, size, result['wall'], result['cpu'], 100 * result['machine_busy'], result['changed']))
                vs_usual.log(raw[-1])
                if result['changed']:
                    raw.append('  NOTE: a converged re-run must say changed=0')
    finally:
        if not args.keep:
            vs_usual.remove_hosts()
        shutil.rmtree(workdir, ignore_errors=True)

    med = {}
    table = ['', header, 'medians of %d re-run(s) per size; every sample above. Bound by: the controller when its processes'
             ' kept >= %d%% of the cores busy; the machine when it was >= %d%% busy otherwise (the hosts are containers on'
             ' these same cores, and other load counts too)' % (args.rounds, 100 * CONTROLLER_BOUND_SHARE, 100 * MACHINE_SATURATED), '',
             '| hosts | converged re-run | per host | controller CPU (user+sys) | controller cores busy | machine busy | bound by |',
             '|---|---|---|---|---|---|---|']
    for size in sizes:
        wall = statistics.median(r['wall'] for r in samples[size])
        cpu = statistics.median(r['cpu'] for r in samples[size])
        busy = statistics.median(r['machine_busy'] for r in samples[size])
        med[size] = dict(wall=wall, cpu=cpu, machine_busy=busy)
        table.append('| %d | %.2f s | %.2f s | %.2f s | %.2f of %d | %.0f%% | %s |' % (
            size, wall, wall / size, cpu, cpu / wall, cores, 100 * busy, verdict(wall, cpu, busy, cores)))
    if len(sizes) > 1:
        ratio = med[sizes[-1]]['wall'] / med[sizes[0]]['wall']
        target = ' (target for 6 vs 1: <= %.1fx, %s)' % (TARGET_RATIO, 'met' if ratio <= TARGET_RATIO else 'NOT met') \
            if (sizes[0], sizes[-1]) == (1, 6) else ' (the target, at most %.1fx, is for 6 hosts against 1)' % TARGET_RATIO
        table.append('')
        table.append('%d hosts / %d host: %.2fx%s' % (sizes[-1], sizes[0], ratio, target))
    print('\n'.join(raw + table))
    out_dir = vs_usual.REPO / 'bench' / 'results'
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
    (out_dir / ('fleet-%s.txt' % stamp)).write_text('\n'.join(raw + table) + '\n')
    (out_dir / ('fleet-%s.json' % stamp)).write_text(
        json.dumps(dict(header=header, samples={str(k): v for k, v in samples.items()}, medians={str(k): v for k, v in med.items()}),
                   indent=1) + '\n')
    print('results: %s' % (out_dir / ('fleet-%s.txt' % stamp)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
