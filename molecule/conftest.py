"""Fixtures the Molecule scenarios' testinfra suites share (pytest loads this conftest for every
molecule/<scenario>/tests/ directory: the repository's pytest.ini makes the checkout the rootdir)."""
from __future__ import annotations

import pytest
import testinfra


@pytest.fixture
def dockerd_not_restarted(host):
    """A check that the last converge kept dockerd running as the one before left it.

    ``runs_path`` is the log each converge appends to: ``<time> MainPID=<pid>
    ActiveEnterTimestampMonotonic=<usec>``. The last two lines must match each other and
    dockerd as it runs now: the same process, never restarted since.
    """
    def check(runs_path):
        runs = host.file(runs_path).content_string.splitlines()
        assert len(runs) >= 2, runs
        last, before = runs[-1].split()[1:], runs[-2].split()[1:]
        assert last == before, runs
        out = host.check_output('systemctl show docker --property MainPID --property ActiveEnterTimestampMonotonic')
        props = dict(line.split('=', 1) for line in out.splitlines())
        assert last == ['MainPID=%s' % props['MainPID'], 'ActiveEnterTimestampMonotonic=%s' % props['ActiveEnterTimestampMonotonic']]
    return check


@pytest.fixture(scope='session')
def instances(request):
    """For a scenario with several instances: names -> {instance name: testinfra host}, from Molecule's inventory."""
    inventory = request.config.getoption('ansible_inventory')

    def hosts(names):
        return {name: testinfra.get_host('ansible://%s' % name, ansible_inventory=inventory) for name in names}
    return hosts
