# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Docker's daemon configuration file, /etc/docker/daemon.json: read, merge, remove, render, write.

This is the only place in the collection that edits daemon.json. Everything but
``write_atomic`` and ``validate`` is pure: it takes and returns plain data and never
mutates its input, so the module (and the tests) can compute a result, compare it and
show a diff before anything touches the disk.

Key paths (for ``remove``) are either a dotted string, ``runtimes.nvidia``, or a list of
keys, ``['runtimes', 'nvidia']``; the list form reaches keys that themselves contain a dot.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile
import time

DEFAULT_PATH = '/etc/docker/daemon.json'

# Runtimes dockerd knows without a `runtimes` entry; any other default-runtime must be registered.
BUILTIN_RUNTIMES = ('runc', 'io.containerd.runc.v2')

_DEFAULT_INDENT = 2


class DaemonJsonError(Exception):
    """daemon.json cannot be read, parsed or written; carries the path and, for parse errors, line and column."""

    def __init__(self, path, message, lineno=None, colno=None):
        self.path = path
        self.message = message
        self.lineno = lineno
        self.colno = colno
        # The message reads as a sentence about the file: "<path> is not valid JSON at line 3, column 16: ..."
        super().__init__('%s %s' % (path, message))


# ---------------------------------------------------------------------------------------------
# Reading


def read_text(path):
    """Return the file's text (BOM stripped), or None when it does not exist; a symlink is followed."""
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except FileNotFoundError:
        # A dangling symlink lands here as well: the target is created when written.
        return None
    except IsADirectoryError:
        raise DaemonJsonError(path, 'is a directory, not a file') from None
    except OSError as exc:
        raise DaemonJsonError(path, 'cannot be read: %s' % exc.strerror) from None
    return decode_text(raw, path)


def decode_text(raw, path=DEFAULT_PATH):
    """The text of daemon.json's bytes, BOM stripped; for bytes read here or fetched from a host."""
    try:
        # utf-8-sig drops a BOM that Windows editors like to add; dockerd itself tolerates one.
        return raw.decode('utf-8-sig')
    except UnicodeDecodeError as exc:
        raise DaemonJsonError(path, 'is not UTF-8 text (byte %d): %s' % (exc.start, exc.reason)) from None


def parse(text, path=DEFAULT_PATH):
    """Parse daemon.json text into a dict; empty or whitespace-only text is an empty configuration."""
    if text is None or not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DaemonJsonError(path, 'is not valid JSON at line %d, column %d: %s' % (exc.lineno, exc.colno, exc.msg),
                              exc.lineno, exc.colno) from None
    if not isinstance(data, dict):
        raise DaemonJsonError(path, 'must hold a JSON object at the top level, found %s' % _json_kind(data))
    return data


def load(path):
    """Read and parse daemon.json: a missing file or an empty one is ``{}``."""
    return parse(read_text(path), path)


def _json_kind(value):
    if isinstance(value, list):
        return 'an array'
    if isinstance(value, str):
        return 'a string'
    if isinstance(value, bool):
        return 'a boolean'
    if isinstance(value, (int, float)):
        return 'a number'
    if value is None:
        return 'null'
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Pure transformations


def normalize(value):
    """Return a deep copy made of plain JSON types (dict, list, str, int, float, bool, None).

    Ansible hands modules str/dict subclasses (tagged or unsafe values); plain types keep the
    comparison in ``effective_equal`` and the JSON encoder free of surprises.
    """
    if isinstance(value, dict):
        return {str(key): normalize(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalize(item) for item in value]
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if value is None:
        return None
    raise TypeError('%r (%s) cannot be written to JSON' % (value, type(value).__name__))


def merge(current, settings):
    """Deep-merge ``settings`` into ``current`` and return a new dict.

    Objects merge key by key (``runtimes``, ``log-opts``, ``features``...); anything else,
    lists included (``default-address-pools``, ``registry-mirrors``), is replaced whole.
    Existing keys keep their position; new keys are appended, so a rewrite stays close to
    the file a person or another tool wrote. Neither argument is modified.
    """
    result = copy.deepcopy(current)
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def apply_defaults(current, defaults):
    """Merge ``defaults`` as one group, only where ``current`` has none of its top-level keys.

    A group such as ``log-driver`` with its ``log-opts`` is someone else's choice once either
    key is in the file: adding json-file's rotation options to a journald setup would even
    stop dockerd from starting. So the group is applied whole or not at all.
    """
    if not defaults or any(key in current for key in defaults):
        return copy.deepcopy(current)
    return merge(current, defaults)


def parse_key_path(key_path):
    """Turn ``'runtimes.nvidia'`` or ``['runtimes', 'nvidia']`` into a tuple of keys."""
    if isinstance(key_path, str):
        parts = tuple(key_path.split('.'))
    elif isinstance(key_path, (list, tuple)) and all(isinstance(part, str) for part in key_path):
        parts = tuple(key_path)
    else:
        raise ValueError('a key path is a dotted string or a list of strings, not %r' % (key_path,))
    if not parts or any(part == '' for part in parts):
        raise ValueError('key path %r has an empty key' % (key_path,))
    return parts


def remove(current, key_paths):
    """Return a copy of ``current`` without the named key paths.

    A path that is not there is ignored. An object that this removal leaves empty is
    removed as well (``runtimes: {}`` after removing the only runtime) because an empty
    object means the same to dockerd as no key; objects that were already empty stay.
    """
    result = copy.deepcopy(current)
    for key_path in key_paths:
        _remove_one(result, parse_key_path(key_path))
    return result


def _remove_one(data, parts):
    head = parts[0]
    if head not in data:
        return
    if len(parts) == 1:
        del data[head]
        return
    child = data[head]
    if not isinstance(child, dict) or not child:
        return
    _remove_one(child, parts[1:])
    if not child:
        del data[head]


def get_path(data, parts, default=None):
    """Value at a key path, or ``default``."""
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def leaf_paths(data, prefix=()):
    """Yield ``(path, value)`` for each non-object value (and each empty object) in ``data``."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, prefix + (key,))
        else:
            yield prefix + (key,), value


def stringify_log_opts(opts):
    """Docker accepts only strings in ``log-opts``; turn numbers and booleans into the strings it expects.

    ``max-file: 3`` becomes ``"3"`` and ``compress: true`` becomes ``"true"``; an object or a
    list has no string form dockerd would accept and raises ValueError.
    """
    result = {}
    for key, value in opts.items():
        if isinstance(value, bool):
            result[key] = 'true' if value else 'false'
        elif isinstance(value, (str, int, float)):
            result[key] = str(value)
        else:
            raise ValueError('log option %r must be a string, number or boolean, not %s' % (key, _json_kind(value)))
    return result


def default_runtime_problem(data):
    """Why dockerd would refuse ``data``'s default-runtime, or None when it is fine."""
    name = data.get('default-runtime')
    if name is None or name in BUILTIN_RUNTIMES:
        return None
    runtimes = data.get('runtimes')
    if isinstance(runtimes, dict) and name in runtimes:
        return None
    return ('default-runtime is %r but no runtime of that name is registered under "runtimes" '
            '(built in: %s); dockerd would refuse to start' % (name, ', '.join(BUILTIN_RUNTIMES)))


def effective_equal(a, b):
    """True when two configurations mean the same to dockerd: key order and formatting are ignored,
    types are not (``true`` is not ``1``, ``"3"`` is not ``3``), list order is kept."""
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)) or a.keys() != b.keys():
            return False
        return all(effective_equal(a[key], b[key]) for key in a)
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return False
        return all(effective_equal(x, y) for x, y in zip(a, b))
    # Python says True == 1 == 1.0; Go's decoder, which dockerd uses, does not.
    if _scalar_kind(a) != _scalar_kind(b):
        return False
    return a == b


def _scalar_kind(value):
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'int'
    if isinstance(value, float):
        return 'float'
    if isinstance(value, str):
        return 'str'
    if value is None:
        return 'null'
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Rendering


def detect_indent(text):
    """The indentation unit of existing JSON text (spaces or a tab), so a rewrite keeps the file's style."""
    if text:
        match = re.match(r'[{\[][ \t]*\r?\n([ \t]+)\S', text.lstrip())
        if match:
            unit = match.group(1)
            return '\t' if unit.startswith('\t') else len(unit)
    return _DEFAULT_INDENT


def render(data, indent=_DEFAULT_INDENT):
    """Canonical text for ``data``: key order as given, ``indent`` per level, UTF-8 kept, trailing newline."""
    return json.dumps(data, indent=indent, ensure_ascii=False) + '\n'


def file_diff(path, before_text, after_text):
    """Ansible's ``diff`` of daemon.json; ``before_text`` None means that the file does not exist."""
    return dict(
        before=before_text or '',
        after=after_text,
        before_header=path if before_text is not None else '%s (absent)' % path,
        after_header=path,
    )


# ---------------------------------------------------------------------------------------------
# Writing


def backup_copy(path):
    """Copy ``path`` beside itself as ``<path>.<pid>.<YYYY-MM-DD@HH:MM:SS>~`` (the name Ansible's
    backup_local uses) and return the copy's name; for callers without an AnsibleModule."""
    ext = time.strftime('%Y-%m-%d@%H:%M:%S~', time.localtime(time.time()))
    dest = '%s.%s.%s' % (path, os.getpid(), ext)
    shutil.copy2(path, dest)
    return dest


def write_atomic(path, text, mode=0o644, backup=False, backup_func=None, before_rename=None):
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half of either.

    A symlink at ``path`` is followed and its target written (the link stays). The text goes
    to a temporary file in the target's directory, is fsynced and renamed over the target.
    An existing target keeps its owner, group and mode; a new one gets ``mode`` regardless
    of the umask. With ``backup``, the old target is copied first by ``backup_func(path)``
    (pass ``module.backup_local``) or ``backup_copy``. ``before_rename(tmp_path, target)``
    may adjust the temporary file (SELinux context) before it takes the target's place.

    Returns the backup's path, or None when none was made.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        current = os.stat(target)
    except FileNotFoundError:
        current = None
    except OSError as exc:
        raise DaemonJsonError(path, 'cannot be examined: %s' % exc.strerror) from None

    backup_file = None
    if backup and current is not None:
        try:
            backup_file = (backup_func or backup_copy)(target)
        except (OSError, shutil.Error) as exc:
            raise DaemonJsonError(path, 'could not be backed up: %s' % exc) from None

    try:
        if not os.path.isdir(directory):
            # /etc/docker does not exist before Docker is installed; configuring first is legitimate.
            os.makedirs(directory, 0o755)
        fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(target), suffix='.tmp', dir=directory)
    except OSError as exc:
        raise DaemonJsonError(path, 'cannot be written: no temporary file in %s: %s' % (directory, exc.strerror)) from None
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(text.encode('utf-8'))
            handle.flush()
            os.fsync(handle.fileno())
        if current is not None:
            os.chmod(tmp_path, current.st_mode & 0o7777)
            if (current.st_uid, current.st_gid) != (os.getuid(), os.getgid()):
                os.chown(tmp_path, current.st_uid, current.st_gid)
        else:
            os.chmod(tmp_path, mode)
        if before_rename is not None:
            before_rename(tmp_path, target)
        os.rename(tmp_path, target)
    except OSError as exc:
        _unlink_quietly(tmp_path)
        raise DaemonJsonError(path, 'cannot be written: %s' % (exc.strerror or exc)) from None
    except BaseException:
        _unlink_quietly(tmp_path)
        raise
    _fsync_directory(directory)
    return backup_file


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_directory(directory):
    # The rename is durable only once the directory entry is on disk; not every filesystem allows it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Validation by dockerd itself


def validate_supported(help_text):
    """``dockerd --validate`` exists from Docker 23 on; older daemons do not list it in ``--help``."""
    return re.search(r'(^|\s)--validate\b', help_text or '') is not None


def validate(text, dockerd, run_command, tmpdir=None):
    """Ask ``dockerd --validate --config-file`` about ``text`` without touching the real file.

    ``run_command(argv)`` returns ``(rc, stdout, stderr)`` (``module.run_command`` fits).
    Returns ``(True, output)`` when dockerd accepts the text, ``(False, output)`` when it
    refuses it and ``(None, reason)`` when this dockerd cannot validate.
    """
    rc, out, err = run_command([dockerd, '--help'])
    if not validate_supported('%s\n%s' % (out, err)):
        return None, '%s has no --validate option (Docker 23 or later has it); the configuration was not validated' % dockerd
    fd, tmp_path = tempfile.mkstemp(prefix='daemon.', suffix='.json', dir=tmpdir)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as handle:
            handle.write(text)
        rc, out, err = run_command([dockerd, '--validate', '--config-file', tmp_path])
    finally:
        _unlink_quietly(tmp_path)
    output = '\n'.join(part.strip() for part in (out, err) if part and part.strip())
    # Name the real file in dockerd's message, not the temporary copy it read.
    output = output.replace(tmp_path, '<candidate daemon.json>')
    return rc == 0, output
