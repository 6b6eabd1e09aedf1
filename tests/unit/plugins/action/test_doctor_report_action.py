# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""doctor_report through ansible-playbook: the report lands on the controller, relative to where the run started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
BIN = os.path.dirname(sys.executable)

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ragops.gpu_stack.doctor_report:
        path: "{{ report_path }}"
        document: {status: ok, hosts: {a: {status: fail}}}
      register: written
    - ansible.builtin.debug:
        msg: "WRITTEN {{ written.path }} CHANGED {{ written.changed }}"
"""


def run(tmp_path, report_path, *args):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(PLAY, encoding='utf-8')
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_COLLECTIONS_PATH='%s:%s' % (REPO / '.cache' / 'collections', REPO / '.cache' / 'vendor'))
    return subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(playbook),
                           '-e', 'report_path=%s' % report_path] + list(args),
                          env=env, cwd=str(tmp_path / 'cwd'), capture_output=True, text=True, check=False)


def test_a_relative_report_lands_under_the_controllers_current_directory_in_check_mode_too(tmp_path):
    (tmp_path / 'cwd').mkdir()
    proc = run(tmp_path, 'reports/run.json', '--check')
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = tmp_path / 'cwd' / 'reports' / 'run.json'
    assert json.loads(written.read_text(encoding='utf-8')) == {'status': 'ok', 'hosts': {'a': {'status': 'fail'}}}
    assert 'WRITTEN %s CHANGED False' % written in ' '.join(proc.stdout.split())
    assert 'changed=0' in proc.stdout
    assert [p.name for p in written.parent.iterdir()] == ['run.json']  # no temporary file left beside it


def test_an_unwritable_directory_fails_naming_the_variable_to_set(tmp_path):
    (tmp_path / 'cwd').mkdir()
    (tmp_path / 'file').write_text('', encoding='utf-8')
    proc = run(tmp_path, str(tmp_path / 'file' / 'run.json'))
    assert proc.returncode == 2
    assert 'cannot write' in proc.stdout and 'gpu_stack_verify_report_dir' in proc.stdout
