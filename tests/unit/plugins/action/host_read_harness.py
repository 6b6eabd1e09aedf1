# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the action plugins' tests share: an action plugin built as ansible-playbook builds it (a
Task, a PlayContext, the local connection with pipelining), the module "on the host" run
in-process, and the Docker stand-in that answers the container plugins' inspect read.

The host is this machine: a plugin's script really runs, with this Python, through the local
connection. Only the Docker Engine is a stand-in: a ``sitecustomize`` on the script's PYTHONPATH
replaces ``docker.APIClient``. Not a test module (no test_ prefix): pytest collects nothing here."""

from __future__ import annotations

import copy
import functools
import json
import os

from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar


def install_stand_in(directory, monkeypatch, source):
    """``source`` as the sitecustomize of the host's Python; its state and log files in ``directory``."""
    (directory / 'sitecustomize.py').write_text(source, encoding='utf-8')
    monkeypatch.setenv('PYTHONPATH', str(directory))
    monkeypatch.setenv('RAGOPS_FAKE_DOCKER', str(directory / 'fake-docker.json'))
    monkeypatch.setenv('RAGOPS_FAKE_DOCKER_LOG', str(directory / 'fake-docker.log'))


# Replaces docker.APIClient in the host's Python: inspect answers from the JSON file named by
# RAGOPS_FAKE_DOCKER ({"mode", "containers", "images", "networks"}); each call is appended to
# the file named by RAGOPS_FAKE_DOCKER_LOG.
INSPECT_DOCKER = r'''
import importlib.abc
import json
import os
import sys

with open(os.environ['RAGOPS_FAKE_DOCKER'], encoding='utf-8') as handle:
    CONFIG = json.load(handle)


def log(*entry):
    with open(os.environ['RAGOPS_FAKE_DOCKER_LOG'], 'a', encoding='utf-8') as handle:
        handle.write(json.dumps(entry) + '\n')


class NoDocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'docker' or name.startswith('docker.'):
            raise ImportError('No module named %r' % name)
        return None


if CONFIG['mode'] == 'no-sdk':
    sys.meta_path.insert(0, NoDocker())
else:
    import docker

    class FakeAPIClient:
        def __init__(self, version=None, timeout=None, **kwargs):
            if CONFIG['mode'] == 'unreachable':
                raise docker.errors.DockerException('Error while fetching server API version: connection refused')
            log('client', kwargs.get('base_url'), timeout)

        def inspect_container(self, name):
            log('inspect_container', name)
            for info in CONFIG['containers'].values():
                if name in (info['Name'].lstrip('/'), info['Id']):
                    return info
            raise docker.errors.NotFound('No such container: %s' % name)

        def inspect_image(self, ref):
            log('inspect_image', ref)
            for tag, info in CONFIG['images'].items():
                if ref in (tag, info['Id']):
                    return info
            raise docker.errors.NotFound('No such image: %s' % ref)

        def networks(self, names=None):
            log('networks', names)
            return [{'Name': name} for name in CONFIG['networks'] if not names or name in names]

    docker.APIClient = FakeAPIClient
'''


class InspectHost:
    """The host: records each low-level command, writes the engine's state for the Docker
    stand-in, then runs the command for real through the local connection."""

    def __init__(self, action, fake, directory, monkeypatch):
        self.real = action._low_level_execute_command
        self.fake = fake
        self.config = directory / 'fake-docker.json'
        self.log = directory / 'fake-docker.log'
        self.mode = 'ok'
        self.calls = []
        install_stand_in(directory, monkeypatch, INSPECT_DOCKER)

    def __call__(self, cmd, sudoable=True, in_data=None, **kwargs):
        self.calls.append(dict(cmd=cmd, sudoable=sudoable, in_data=in_data))
        state = dict(mode=self.mode, containers=self.fake.containers, images=self.fake.images,
                     networks=sorted(self.fake.networks_))
        self.config.write_text(json.dumps(state), encoding='utf-8')
        return self.real(cmd, sudoable=sudoable, in_data=in_data, **kwargs)

    def engine_calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding='utf-8').splitlines()]


class ModuleOnTheHost:
    """Stands in for ActionBase._execute_module: records the call and runs the module here,
    ``module_output(args, check_mode=, diff=)`` giving what its exit_json prints."""

    def __init__(self, task, module_output):
        self.task = task
        self.module_output = module_output
        self.calls = []
        self.returned = []

    def __call__(self, module_name=None, module_args=None, task_vars=None, wrap_async=False):
        self.calls.append(dict(module_name=module_name, module_args=copy.deepcopy(module_args), wrap_async=wrap_async))
        result = self.module_output(module_args, check_mode=self.task.check_mode, diff=self.task.diff)
        self.returned.append(copy.deepcopy(result))
        return result


def build_action(plugin, module_name, args, task_vars, check_mode=False, diff=False, async_val=0, pipelining=True,
                 environment=None):
    """``plugin``'s ActionModule for a task with ``args``, on the local connection; and its Task."""
    task = Task()
    task.args = copy.deepcopy(args)
    task.check_mode = check_mode
    task.diff = diff
    task.async_val = async_val
    task.environment = environment or []
    play_context = PlayContext()
    connection = connection_loader.get('local', play_context, None)
    connection.set_options(direct={'pipelining': pipelining})
    loader = DataLoader()
    action = plugin.ActionModule(task, connection, play_context, loader=loader,
                                 templar=Templar(loader=loader, variables=task_vars), shared_loader_obj=None)
    action._load_name = module_name  # what the plugin loader sets
    return action, task


def module_call(module_name, args, wrap_async=False):
    """What ModuleOnTheHost.calls holds after the plugin ran the module once with ``args``."""
    return [dict(module_name=module_name, module_args=args, wrap_async=wrap_async)]


def vvv_lines(monkeypatch, display):
    """What a plugin says at -vvv through ``display``, in order."""
    lines = []
    monkeypatch.setattr(display, 'vvv', lambda msg, host=None: lines.append(msg))
    return lines


def action_maker(plugin, module_name, task_vars, module_output, fake, host_class, directory, monkeypatch):
    """``make(args, ...)`` -> ``(action, module, host)``: ``plugin``'s action for a task with
    ``args``, its module standing in through ``module_output(fake, ...)``, its host ``host_class``."""
    def make(args, check_mode=False, diff=False, async_val=0, pipelining=True, environment=None):
        action, task = build_action(plugin, module_name, args, task_vars, check_mode=check_mode, diff=diff,
                                    async_val=async_val, pipelining=pipelining, environment=environment)
        module = ModuleOnTheHost(task, functools.partial(module_output, fake))
        action._execute_module = module
        host = host_class(action, fake, directory, monkeypatch)
        action._low_level_execute_command = host
        return action, module, host
    return make


class AsyncModuleOnTheHost(ModuleOnTheHost):
    """ModuleOnTheHost that also plays async_wrapper and async_status as ``_execute_module`` returns them.

    A ``wrap_async`` call forks a process that runs the module, as async_wrapper does, and
    answers at once with the job: ``started``, ``ansible_job_id``, ``results_file`` (a job file
    in ``directory`` that holds ``{"started": true, "finished": false}`` until the module's
    result replaces it, by a rename, as async_wrapper's jwrite does). An
    ``ansible.legacy.async_status`` call answers from that file as the module does: ``finished``
    false while it runs, then the module's result with ``finished`` and ``ansible_job_id`` added.
    ``results`` holds each finished job's result as the module printed it.
    """

    ASYNC_STATUS = 'ansible.legacy.async_status'

    def __init__(self, task, module_output, directory):
        super().__init__(task, module_output)
        self.directory = directory
        self.printed_dir = directory.parent / (directory.name + '-printed')
        self.polls = []
        self.children = {}

    @property
    def results(self):
        """{job id: the module's result as it printed it} of every finished job (their processes reaped)."""
        self.reap()
        if not self.printed_dir.is_dir():
            return {}
        return {path.name: json.loads(path.read_text(encoding='utf-8')) for path in self.printed_dir.iterdir()}

    def __call__(self, module_name=None, module_args=None, task_vars=None, wrap_async=False):
        if module_name == self.ASYNC_STATUS:
            return self.status(module_args)
        if not wrap_async:
            return super().__call__(module_name, module_args, task_vars, wrap_async)
        self.calls.append(dict(module_name=module_name, module_args=copy.deepcopy(module_args), wrap_async=wrap_async))
        jid = 'j%d.%d' % (len(self.calls), os.getpid())
        job = self.directory / jid
        job.write_text(json.dumps({'started': True, 'finished': False, 'ansible_job_id': jid}), encoding='utf-8')
        pid = os.fork()
        if pid == 0:  # the job: the module's result replaces the job file, as async_wrapper's jwrite does
            try:
                result = self.module_output(module_args, check_mode=self.task.check_mode, diff=self.task.diff)
                # What the module printed, kept beside the job directory for the test to compare with.
                self.printed_dir.mkdir(exist_ok=True)
                (self.printed_dir / jid).write_text(json.dumps(result), encoding='utf-8')
                (self.directory / (jid + '.tmp')).write_text(json.dumps(result), encoding='utf-8')
                os.replace(self.directory / (jid + '.tmp'), job)
            finally:
                os._exit(0)  # pylint: disable=protected-access
        self.children[jid] = pid
        return {'failed': False, 'started': True, 'finished': False, 'ansible_job_id': jid, 'results_file': str(job),
                '_ansible_parsed': True}

    def status(self, module_args):
        self.polls.append(copy.deepcopy(module_args))
        jid = module_args['jid']
        job = self.directory / jid
        assert module_args['_async_dir'] == str(self.directory), module_args
        if not job.exists():
            return {'failed': True, 'msg': 'could not find job', 'ansible_job_id': jid, 'started': True, 'finished': True,
                    '_ansible_parsed': True}
        data = json.loads(job.read_text(encoding='utf-8'))
        if 'started' in data:
            return dict(data, _ansible_parsed=True)
        self.reap(jid)
        return dict(data, finished=True, ansible_job_id=jid, _ansible_parsed=True)

    def reap(self, jid=None):
        """Wait for the process of job ``jid`` (which has written its result), or of every job (at a test's end)."""
        for job in [jid] if jid else list(self.children):
            if job in self.children:
                os.waitpid(self.children.pop(job), 0)
