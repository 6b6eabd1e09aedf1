# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from ansible_collections.ragops.gpu_stack.plugins.module_utils import daemon_json as dj

# ---------------------------------------------------------------------------------------------
# Strategies: daemon.json-shaped data. Keys are short so that settings and the current file
# collide often, which is where merge and remove can go wrong.

keys = st.sampled_from(['runtimes', 'nvidia', 'log-opts', 'features', 'cdi', 'a', 'b', 'c', 'data-root', 'x.y'])
# -0.0 + 0.0 is 0.0: JSON tells the two zeros apart, Python's == does not, and dockerd has no float keys that care.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: f + 0.0),
                    st.text(max_size=5))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
                           max_leaves=12)
json_objects = st.dictionaries(keys, json_values, max_size=5)
key_paths = st.lists(keys, min_size=1, max_size=3)

# The machine running the suite is shared and small: timing is not what these properties test.
relaxed = hyp_settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _paths_of(data, prefix=()):
    """Every key path in ``data``, objects and leaves alike."""
    for key, value in data.items():
        yield prefix + (key,)
        if isinstance(value, dict):
            yield from _paths_of(value, prefix + (key,))


def _is_prefix(short, long_):
    return long_[:len(short)] == short


# ---------------------------------------------------------------------------------------------
# Properties


@relaxed
@given(json_objects, json_objects)
def test_merge_keeps_keys_not_named_in_settings(current, settings):
    merged = dj.merge(current, settings)
    for key, value in current.items():
        if key not in settings:
            assert dj.effective_equal(merged[key], value)
            assert list(merged).index(key) == list(current).index(key)


@relaxed
@given(json_objects, json_objects)
def test_merge_keeps_nested_keys_not_named_in_settings(current, settings):
    merged = dj.merge(current, settings)
    for path in _paths_of(current):
        if dj.get_path(settings, path[:-1], None) is None or not isinstance(dj.get_path(settings, path[:-1]), dict):
            continue
        parent_in_settings = dj.get_path(settings, path[:-1])
        parents_are_dicts = all(isinstance(dj.get_path(current, path[:i]), dict) for i in range(1, len(path)))
        if parents_are_dicts and path[-1] not in parent_in_settings:
            assert dj.effective_equal(dj.get_path(merged, path), dj.get_path(current, path))


@relaxed
@given(json_objects, json_objects)
def test_merge_is_idempotent(current, settings):
    once = dj.merge(current, settings)
    assert dj.effective_equal(dj.merge(once, settings), once)


@relaxed
@given(json_objects, json_objects)
def test_merge_sets_every_leaf_of_settings(current, settings):
    merged = dj.merge(current, settings)
    for path, value in dj.leaf_paths(settings):
        got = dj.get_path(merged, path)
        if value == {}:
            assert isinstance(got, dict)
        else:
            assert dj.effective_equal(got, value)


@relaxed
@given(json_objects, json_objects)
def test_merge_does_not_mutate_its_input(current, settings):
    current_copy = json.loads(json.dumps(current))
    settings_copy = json.loads(json.dumps(settings))
    merged = dj.merge(current, settings)
    assert dj.effective_equal(current, current_copy)
    assert dj.effective_equal(settings, settings_copy)
    # The result shares nothing mutable with the input.
    for key, value in merged.items():
        if isinstance(value, (dict, list)):
            assert value is not current.get(key) and value is not settings.get(key)


@relaxed
@given(json_objects, st.lists(key_paths, max_size=3))
def test_remove_removes_only_what_it_names(current, paths):
    current_copy = json.loads(json.dumps(current))
    result = dj.remove(current, paths)
    assert dj.effective_equal(current, current_copy)
    named = [tuple(path) for path in paths]
    for path in named:
        assert dj.get_path(result, path, KeyError) is KeyError
    for path in _paths_of(current):
        if any(_is_prefix(name, path) for name in named):
            continue
        value = dj.get_path(current, path)
        if any(_is_prefix(path, name) for name in named):
            # An ancestor of a removed path: still there unless the removal emptied it.
            survivor = dj.get_path(result, path, KeyError)
            if survivor is KeyError:
                assert isinstance(value, dict) and value
            continue
        assert dj.effective_equal(dj.get_path(result, path), value)


@relaxed
@given(json_objects, st.sampled_from([2, 4, '\t']))
def test_render_then_parse_round_trips(data, indent):
    text = dj.render(data, indent)
    assert text.endswith('\n')
    parsed = dj.parse(text)
    assert dj.effective_equal(parsed, data)
    assert list(parsed) == list(data)
    assert dj.render(parsed, indent) == text


@relaxed
@given(json_objects)
def test_load_of_rendered_file_round_trips(tmp_path_factory, data):
    path = tmp_path_factory.mktemp('rt') / 'daemon.json'
    path.write_text(dj.render(data), encoding='utf-8')
    assert dj.render(dj.load(str(path))) == path.read_text(encoding='utf-8')


@relaxed
@given(json_values, json_values)
def test_effective_equal_agrees_with_json_text(a, b):
    # Two values are effectively equal exactly when their canonical JSON is equal.
    def canon(value):
        return json.dumps(value, sort_keys=True)
    assert dj.effective_equal(a, b) == (canon(a) == canon(b))


# ---------------------------------------------------------------------------------------------
# Examples: reading


def test_missing_file_is_empty(tmp_path):
    assert dj.load(str(tmp_path / 'daemon.json')) == {}
    assert dj.read_text(str(tmp_path / 'daemon.json')) is None


@pytest.mark.parametrize('content', [b'', b'   \n\t\n', b'\xef\xbb\xbf', b'\xef\xbb\xbf \n'])
def test_empty_or_whitespace_file_is_empty(tmp_path, content):
    path = tmp_path / 'daemon.json'
    path.write_bytes(content)
    assert dj.load(str(path)) == {}


def test_bom_is_tolerated(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_bytes(b'\xef\xbb\xbf{"live-restore": true}\n')
    assert dj.load(str(path)) == {'live-restore': True}
    assert not dj.read_text(str(path)).startswith('\ufeff')


def test_invalid_json_error_names_path_line_and_column(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_text('{\n  "live-restore": true,\n  "log-driver" "json-file"\n}\n', encoding='utf-8')
    with pytest.raises(dj.DaemonJsonError) as info:
        dj.load(str(path))
    err = info.value
    assert err.path == str(path)
    assert (err.lineno, err.colno) == (3, 16)
    message = str(err)
    assert str(path) in message
    assert 'line 3, column 16' in message
    assert "Expecting ':' delimiter" in message


@pytest.mark.parametrize('text, kind', [('[]', 'an array'), ('"x"', 'a string'), ('3', 'a number'), ('null', 'null'), ('true', 'a boolean')])
def test_top_level_must_be_an_object(tmp_path, text, kind):
    path = tmp_path / 'daemon.json'
    path.write_text(text, encoding='utf-8')
    with pytest.raises(dj.DaemonJsonError, match='JSON object at the top level, found %s' % kind):
        dj.load(str(path))


def test_not_utf8_is_an_error(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_bytes(b'{"data-root": "/v\xe4r"}')
    with pytest.raises(dj.DaemonJsonError, match='not UTF-8'):
        dj.load(str(path))


def test_decode_text_is_what_read_text_does_with_the_bytes(tmp_path):
    # The action plugin decodes bytes fetched from the host with decode_text: the same text, the same errors.
    path = tmp_path / 'daemon.json'
    for raw in (b'\xef\xbb\xbf{"live-restore": true}\r\n', '{"data-root": "/srv/d\u00f6cker"}'.encode('utf-8'), b''):
        path.write_bytes(raw)
        assert dj.decode_text(raw, str(path)) == dj.read_text(str(path))
    with pytest.raises(dj.DaemonJsonError, match='%s is not UTF-8 text' % path):
        dj.decode_text(b'{"data-root": "/v\xe4r"}', str(path))


def test_directory_is_an_error(tmp_path):
    with pytest.raises(dj.DaemonJsonError, match='is a directory'):
        dj.load(str(tmp_path))


# ---------------------------------------------------------------------------------------------
# Examples: transformations


def test_merge_example_keeps_foreign_keys_and_order():
    current = {'data-root': '/srv/docker', 'runtimes': {'crun': {'path': 'crun'}}, 'log-driver': 'local'}
    settings = {'runtimes': {'nvidia': {'path': 'nvidia-container-runtime', 'args': []}}, 'features': {'cdi': True}}
    merged = dj.merge(current, settings)
    assert list(merged) == ['data-root', 'runtimes', 'log-driver', 'features']
    assert merged['runtimes'] == {'crun': {'path': 'crun'}, 'nvidia': {'path': 'nvidia-container-runtime', 'args': []}}


def test_merge_replaces_lists():
    current = {'default-address-pools': [{'base': '10.0.0.0/8', 'size': 24}]}
    merged = dj.merge(current, {'default-address-pools': [{'base': '172.30.0.0/16', 'size': 24}]})
    assert merged == {'default-address-pools': [{'base': '172.30.0.0/16', 'size': 24}]}


def test_remove_dotted_and_list_paths():
    current = {'runtimes': {'nvidia': {}, 'my.rt': {}}, 'log-opts': {'max-size': '1m', 'max-file': '3'}}
    result = dj.remove(current, ['log-opts.max-size', ['runtimes', 'my.rt'], 'not.there', 'log-opts.max-size.deeper'])
    assert result == {'runtimes': {'nvidia': {}}, 'log-opts': {'max-file': '3'}}


def test_remove_prunes_objects_it_empties_only():
    current = {'runtimes': {'nvidia': {'path': 'x'}}, 'features': {}}
    assert dj.remove(current, ['runtimes.nvidia']) == {'features': {}}


@pytest.mark.parametrize('bad', ['', 'a..b', '.a', [], ['a', ''], [1], 3, None])
def test_bad_key_paths(bad):
    with pytest.raises(ValueError):
        dj.parse_key_path(bad)


def test_log_opts_become_strings():
    assert dj.stringify_log_opts({'max-file': 3, 'compress': True, 'max-size': '10m', 'ratio': 0.5, 'off': False}) == {
        'max-file': '3', 'compress': 'true', 'max-size': '10m', 'ratio': '0.5', 'off': 'false'}
    with pytest.raises(ValueError, match="'labels'"):
        dj.stringify_log_opts({'labels': ['a']})


def test_effective_equal_is_strict_about_types_not_order():
    assert dj.effective_equal({'a': 1, 'b': {'c': True}}, {'b': {'c': True}, 'a': 1})
    assert not dj.effective_equal({'live-restore': True}, {'live-restore': 1})
    assert not dj.effective_equal({'max-file': '3'}, {'max-file': 3})
    assert not dj.effective_equal({'n': 1}, {'n': 1.0})
    assert not dj.effective_equal({'l': [1, 2]}, {'l': [2, 1]})


def test_normalize_turns_subclasses_into_plain_types():
    class Tagged(str):
        pass
    out = dj.normalize({Tagged('k'): (Tagged('v'), 1, True, None, 1.5)})
    assert out == {'k': ['v', 1, True, None, 1.5]}
    assert next(iter(out)).__class__ is str and out['k'][0].__class__ is str
    with pytest.raises(TypeError):
        dj.normalize({'when': object()})


def test_default_runtime_problem():
    assert dj.default_runtime_problem({}) is None
    assert dj.default_runtime_problem({'default-runtime': 'runc'}) is None
    assert dj.default_runtime_problem({'default-runtime': 'nvidia', 'runtimes': {'nvidia': {'path': 'x'}}}) is None
    assert 'refuse to start' in dj.default_runtime_problem({'default-runtime': 'nvidia'})


@pytest.mark.parametrize('text, indent', [
    ('{\n    "a": 1\n}\n', 4), ('{\n\t"a": 1\n}', '\t'), ('{"a": 1}', 2), ('', 2), (None, 2), ('\ufeff{\r\n  "a": 1\r\n}', 2)])
def test_detect_indent(text, indent):
    assert dj.detect_indent(text) == indent


# ---------------------------------------------------------------------------------------------
# Examples: writing


def test_write_new_file_gets_mode_0644_despite_umask(tmp_path):
    path = tmp_path / 'docker' / 'daemon.json'
    old = os.umask(0o077)
    try:
        assert dj.write_atomic(str(path), '{}\n') is None
    finally:
        os.umask(old)
    assert path.read_text(encoding='utf-8') == '{}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert os.listdir(path.parent) == ['daemon.json']


def test_write_keeps_mode_of_existing_file(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_text('{}', encoding='utf-8')
    path.chmod(0o600)
    dj.write_atomic(str(path), '{"a": 1}\n')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text(encoding='utf-8') == '{"a": 1}\n'


def test_write_through_symlink_writes_the_target(tmp_path):
    target = tmp_path / 'real' / 'daemon.json'
    target.parent.mkdir()
    target.write_text('{}', encoding='utf-8')
    link = tmp_path / 'daemon.json'
    link.symlink_to(target)
    assert dj.load(str(link)) == {}
    dj.write_atomic(str(link), '{"live-restore": true}\n')
    assert link.is_symlink()
    assert target.read_text(encoding='utf-8') == '{"live-restore": true}\n'
    assert dj.load(str(link)) == {'live-restore': True}


def test_write_through_dangling_symlink_creates_the_target(tmp_path):
    link = tmp_path / 'daemon.json'
    link.symlink_to(tmp_path / 'elsewhere.json')
    assert dj.load(str(link)) == {}
    dj.write_atomic(str(link), '{}\n')
    assert link.is_symlink()
    assert (tmp_path / 'elsewhere.json').read_text(encoding='utf-8') == '{}\n'


def test_write_with_backup(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_text('{"old": true}', encoding='utf-8')
    backup = dj.write_atomic(str(path), '{}\n', backup=True)
    assert backup is not None and backup.startswith(str(path) + '.') and backup.endswith('~')
    assert open(backup, encoding='utf-8').read() == '{"old": true}'
    calls = []
    dj.write_atomic(str(path), '{"b": 1}\n', backup=True, backup_func=lambda p: calls.append(p) or p + '.bak')
    assert calls == [str(path)]


def test_write_without_existing_file_makes_no_backup(tmp_path):
    assert dj.write_atomic(str(tmp_path / 'daemon.json'), '{}\n', backup=True) is None


def test_failed_hook_leaves_old_file_and_no_temp(tmp_path):
    path = tmp_path / 'daemon.json'
    path.write_bytes(b'{"keep": 1}')

    def refuse(tmp, target):
        raise RuntimeError('no')
    with pytest.raises(RuntimeError):
        dj.write_atomic(str(path), '{}\n', before_rename=refuse)
    assert path.read_bytes() == b'{"keep": 1}'
    assert os.listdir(tmp_path) == ['daemon.json']


# ---------------------------------------------------------------------------------------------
# Examples: validation by dockerd


OLD_HELP = 'Usage:\tdockerd [OPTIONS]\n\n      --tlsverify    Use TLS and verify the remote\n  -v, --version   Print version information and quit\n'
NEW_HELP = OLD_HELP + '      --validate    Validate daemon configuration and exit\n'


def _runner(help_text, rc=0, out='configuration OK', err=''):
    seen = []

    def run(argv):
        seen.append(argv)
        if argv[1] == '--help':
            return 0, help_text, ''
        seen.append(open(argv[3], encoding='utf-8').read())
        return rc, out.replace('FILE', argv[3]), err.replace('FILE', argv[3])
    return run, seen


def test_validate_supported_detection():
    assert dj.validate_supported(NEW_HELP)
    assert not dj.validate_supported(OLD_HELP)
    assert not dj.validate_supported('--validated-thing')


def test_validate_skipped_on_old_dockerd(tmp_path):
    run, seen = _runner(OLD_HELP)
    accepted, note = dj.validate('{}\n', '/usr/sbin/dockerd', run, str(tmp_path))
    assert accepted is None and '--validate' in note
    assert len(seen) == 1


def test_validate_accepts_and_cleans_up(tmp_path):
    run, seen = _runner(NEW_HELP)
    assert dj.validate('{"a": 1}\n', 'dockerd', run, str(tmp_path)) == (True, 'configuration OK')
    assert seen[1][:3] == ['dockerd', '--validate', '--config-file']
    assert seen[2] == '{"a": 1}\n'
    assert os.listdir(tmp_path) == []


def test_validate_refusal_hides_temp_name(tmp_path):
    run, seen = _runner(NEW_HELP, rc=1, out='', err='unable to configure the Docker daemon with file FILE: bad')
    accepted, output = dj.validate('{}\n', 'dockerd', run, str(tmp_path))
    assert accepted is False
    assert output == 'unable to configure the Docker daemon with file <candidate daemon.json>: bad'


@relaxed
@given(json_objects)
def test_remove_after_merge_of_same_paths_leaves_rest(current):
    # Setting then removing the same top-level key gives the file without that key.
    merged = dj.merge(current, {'live-restore': True})
    assert dj.effective_equal(dj.remove(merged, ['live-restore']), dj.remove(current, ['live-restore']))


def test_apply_defaults_fills_an_empty_group():
    defaults = {'log-driver': 'json-file', 'log-opts': {'max-size': '10m'}}
    assert dj.apply_defaults({'live-restore': True}, defaults) == {
        'live-restore': True, 'log-driver': 'json-file', 'log-opts': {'max-size': '10m'}}


@pytest.mark.parametrize('current', [
    {'log-driver': 'journald'},
    {'log-opts': {'tag': '{{.Name}}'}},
])
def test_apply_defaults_leaves_a_group_someone_else_started(current):
    defaults = {'log-driver': 'json-file', 'log-opts': {'max-size': '10m'}}
    assert dj.apply_defaults(current, defaults) == current
