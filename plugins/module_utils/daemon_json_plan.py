# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a docker_daemon_config task asks of daemon.json: its options, their translation into
daemon.json keys, and the configuration the file holds after the task.

The module plans with these functions on the host before it writes; its action plugin plans
with the same ones on the controller, to answer a converged host without running the module.
So nothing here uses AnsibleModule or touches a file: options in, plain data out, bad input
raised as InputError naming the option.
"""

from __future__ import annotations

import os

from ansible_collections.ragops.gpu_stack.plugins.module_utils.daemon_json import (
    apply_defaults,
    default_runtime_problem,
    effective_equal,
    get_path,
    leaf_paths,
    merge,
    normalize,
    parse_key_path,
    remove,
    render,
    stringify_log_opts,
)

# The options that set or remove daemon.json keys; state=absent takes none of them.
SETTING_OPTIONS = (
    'nvidia_runtime', 'default_runtime', 'cdi', 'log_driver', 'log_opts',
    'registry_mirrors', 'insecure_registries', 'live_restore', 'data_root',
)

_MISSING = object()


class InputError(Exception):
    """Bad module input; the message names the option and the fix."""


def argument_spec():
    """The task's options (described in the module's DOCUMENTATION), for AnsibleModule on the host
    and for the action plugin's validation on the controller."""
    return dict(
        path=dict(type='path', default='/etc/docker/daemon.json'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        settings=dict(type='dict'),
        defaults=dict(type='dict'),
        remove=dict(type='list', elements='raw'),
        nvidia_runtime=dict(type='bool'),
        nvidia_runtime_path=dict(type='str', default='nvidia-container-runtime'),
        default_runtime=dict(type='str'),
        cdi=dict(type='bool'),
        log_driver=dict(type='str'),
        log_opts=dict(type='dict'),
        registry_mirrors=dict(type='list', elements='str'),
        insecure_registries=dict(type='list', elements='str'),
        live_restore=dict(type='bool'),
        data_root=dict(type='path'),
        backup=dict(type='bool', default=False),
        validate=dict(type='bool', default=True),
    )


# state=absent does nothing but remove, so it needs something to remove. Used with argument_spec().
REQUIRED_IF = [('state', 'absent', ('remove',))]


def _nonempty(params, name):
    value = params[name]
    if not value or not value.strip():
        raise InputError('%s must not be empty; leave it unset to keep the key as it is' % name)
    return value


def option_changes(params):
    """Translate the setting options into ``(option, key path, value)`` to set and ``(option, key path)`` to remove."""
    sets = []
    removals = []
    if params['nvidia_runtime'] is True:
        runtime_path = _nonempty(params, 'nvidia_runtime_path')
        sets.append(('nvidia_runtime', ('runtimes', 'nvidia'), {'path': runtime_path, 'args': []}))
    elif params['nvidia_runtime'] is False:
        removals.append(('nvidia_runtime', ('runtimes', 'nvidia')))
    if params['default_runtime'] is not None:
        sets.append(('default_runtime', ('default-runtime',), _nonempty(params, 'default_runtime')))
    if params['cdi'] is not None:
        sets.append(('cdi', ('features', 'cdi'), params['cdi']))
    if params['log_driver'] is not None:
        sets.append(('log_driver', ('log-driver',), _nonempty(params, 'log_driver')))
    if params['log_opts'] is not None:
        try:
            opts = stringify_log_opts(normalize(params['log_opts']))
        except ValueError as exc:
            raise InputError('log_opts: %s' % exc) from None
        sets.append(('log_opts', ('log-opts',), opts))
    if params['registry_mirrors'] is not None:
        for mirror in params['registry_mirrors']:
            if not mirror.startswith(('http://', 'https://')):
                raise InputError('registry_mirrors: %r must be a URL starting with https:// or http://, '
                                 'for example https://%s; dockerd refuses anything else' % (mirror, mirror))
        sets.append(('registry_mirrors', ('registry-mirrors',), list(params['registry_mirrors'])))
    if params['insecure_registries'] is not None:
        for registry in params['insecure_registries']:
            if '://' in registry:
                raise InputError('insecure_registries: %r must be host[:port] or a CIDR range without a scheme, '
                                 'for example %s; dockerd refuses a scheme there' % (registry, registry.split('://', 1)[1]))
        sets.append(('insecure_registries', ('insecure-registries',), list(params['insecure_registries'])))
    if params['live_restore'] is not None:
        sets.append(('live_restore', ('live-restore',), params['live_restore']))
    if params['data_root'] is not None:
        if not os.path.isabs(params['data_root']):
            raise InputError('data_root: %r must be an absolute path, for example /var/lib/docker' % params['data_root'])
        sets.append(('data_root', ('data-root',), params['data_root']))
    return sets, removals


def _nest(parts, value):
    for part in reversed(parts):
        value = {part: value}
    return value


def _dotted(parts):
    return '.'.join(parts)


def desired_changes(params):
    """Check the input and return ``(removals, settings, option_removals)``.

    ``removals`` (from O(remove)) apply first, then ``settings`` (O(settings) with the setting
    options merged in) is merged, then ``option_removals`` (O(nvidia_runtime=false)) apply.
    """
    if params['state'] == 'absent':
        given = [name for name in ('settings', 'defaults') + SETTING_OPTIONS if params[name] is not None]
        if given:
            raise InputError('state=absent only removes the key paths in remove; unset %s, or use state=present'
                             % ', '.join(given))

    removals = []
    for index, key_path in enumerate(params['remove'] or []):
        try:
            removals.append(parse_key_path(normalize(key_path)))
        except (ValueError, TypeError) as exc:
            raise InputError('remove[%d]: %s; write a dotted string such as runtimes.nvidia or a list of keys '
                             'such as [runtimes, nvidia]' % (index, exc)) from None

    settings = _json_settings(params['settings'], 'settings')

    option_sets, option_removals = option_changes(params)

    # One key, one value: when settings and an option disagree there is no right answer to pick.
    for option, parts, value in option_sets:
        for leaf, leaf_value in leaf_paths(_nest(parts, value)):
            given = get_path(settings, leaf, _MISSING)
            if leaf_value != {} and given is not _MISSING and not effective_equal(given, leaf_value):
                raise InputError('settings.%s is %s but %s sets it to %s; set it in one place only'
                                 % (_dotted(leaf), _json(given), option, _json(leaf_value)))
    for option, parts in option_removals:
        if get_path(settings, parts, _MISSING) is not _MISSING:
            raise InputError('settings.%s sets what %s=false removes; set it in one place only' % (_dotted(parts), option))

    for option, parts, value in option_sets:
        settings = merge(settings, _nest(parts, value))
    return removals, settings, [parts for option, parts in option_removals]


def _json_settings(value, option):
    """A free-form settings option as JSON data, its log-opts values turned into strings."""
    try:
        settings = normalize(value or {})
    except TypeError as exc:
        raise InputError('%s: %s; give JSON values only (strings, numbers, booleans, lists, objects)' % (option, exc)) from None
    if isinstance(settings.get('log-opts'), dict):
        try:
            settings['log-opts'] = stringify_log_opts(settings['log-opts'])
        except ValueError as exc:
            raise InputError('%s.log-opts: %s' % (option, exc)) from None
    return settings


def _json(value):
    return render(value, indent=None).strip()


def compute(current, params):
    """The configuration after this task, checked for a default-runtime dockerd would refuse.

    Returns ``(result, problem)``: ``problem`` is a default-runtime fault that the file already
    had and this task leaves as it was (worth a warning, not a failure).
    """
    removals, settings, option_removals = desired_changes(params)
    result = remove(merge(remove(current, removals), settings), option_removals)
    result = apply_defaults(result, _json_settings(params['defaults'], 'defaults'))

    problem = default_runtime_problem(result)
    if problem:
        if params['default_runtime'] is not None:
            raise InputError('default_runtime: %s. Set nvidia_runtime: true to register the nvidia runtime, register %r '
                             'under settings.runtimes, or use default_runtime: runc' % (problem, params['default_runtime']))
        if params['nvidia_runtime'] is False and current.get('default-runtime') == 'nvidia' \
                and get_path(current, ('runtimes', 'nvidia'), _MISSING) is not _MISSING:
            raise InputError('nvidia_runtime: false removes the nvidia runtime that default-runtime uses; '
                             'set default_runtime: runc as well')
        untouched = (effective_equal(current.get('default-runtime'), result.get('default-runtime'))
                     and effective_equal(current.get('runtimes'), result.get('runtimes')))
        if not untouched:
            raise InputError('%s; fix default-runtime or runtimes in settings or remove' % problem)
    return result, problem
