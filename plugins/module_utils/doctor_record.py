# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One doctor check, the worst of several, and the report line a play prints for it (contract C3).

A check is ``{id, status, message, cause, fix}``: ``status`` is ok, warn or fail; ``cause`` and
``fix`` are null for an ok check and say what is likely wrong and what to do otherwise.
"""

from __future__ import annotations

OK = 'ok'
WARN = 'warn'
FAIL = 'fail'
RANK = {OK: 0, WARN: 1, FAIL: 2}


def make_check(check_id, status, message, cause=None, fix=None):
    if status not in RANK:
        raise ValueError('a check status is ok, warn or fail, not %r' % (status,))
    return {'id': check_id, 'status': status, 'message': message,
            'cause': None if status == OK else cause, 'fix': None if status == OK else fix}


def worst(checks):
    """The worst status among ``checks`` (ok when there are none)."""
    return max((c['status'] for c in checks), key=RANK.get, default=OK)


def report_line(check):
    """``ok <id>: message`` / ``warn ...`` / ``FAIL <id>: message; cause: ...; fix: ...``."""
    word = 'FAIL' if check['status'] == FAIL else check['status']
    line = '%s %s: %s' % (word, check['id'], check['message'])
    if check.get('cause'):
        line += '; cause: %s' % check['cause']
    if check.get('fix'):
        line += '; fix: %s' % check['fix']
    return line
