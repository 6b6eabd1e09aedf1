#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

# The action plugin plugins/action/doctor_report.py does the work, on the controller; this file holds its documentation.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: doctor_report
short_description: Write the doctor's JSON report of a run on the controller
version_added: 0.1.0
author:
  - ragops (@ragops)
description:
  - Writes O(document) as JSON to O(path) on the Ansible controller, whatever host the task runs for, creating
    the directory when missing. The file is written to a temporary file beside it and renamed into place, so a
    reader sees no report or the whole one.
  - An action plugin only; nothing runs on a managed host. C(playbooks/verify.yml) calls it once per run with
    every host's C(stack_doctor) result.
options:
  path:
    description:
      - The report file on the controller. A relative path is taken from the controller's current directory
        (where C(ansible-playbook) was started), not the playbook's.
    type: path
    required: true
  document:
    description:
      - The report, any JSON-able mapping.
    type: dict
    required: true
extends_documentation_fragment:
  - ragops.gpu_stack.attributes
attributes:
  check_mode:
    support: full
    description: The report is written in check mode too (it is the run's output, not a host's state); never a change.
  diff_mode:
    support: none
    description: The report is output, not a managed file, so there is nothing to diff.
  platform:
    support: full
    platforms: posix
    description: The controller.
  action:
    support: full
    description: Runs on the controller only.
seealso:
  - module: ragops.gpu_stack.stack_doctor
"""

EXAMPLES = r"""
- name: Write the run's report on the controller
  ragops.gpu_stack.doctor_report:
    path: "doctor-reports/doctor-{{ now(utc=true, fmt='%Y%m%dT%H%M%SZ') }}.json"
    document:
      timestamp: "{{ now(utc=true).isoformat() }}"
      hosts: "{{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'gpu_stack_verify'))) }}"
  run_once: true
"""

RETURN = r"""
path:
  description: The absolute path of the report written.
  returned: success
  type: str
  sample: /srv/ops/doctor-reports/doctor-20261208T004100Z.json
"""
