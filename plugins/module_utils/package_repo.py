# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Package repositories and their signing keys: apt (deb822 or one-line), dnf/yum and zypper.

Everything here but the last section is pure: rendering a repository file, mapping a
machine architecture to the package world's name for it, reading OpenPGP public keys
(armour, CRC-24, packets, fingerprints) and building or parsing package manager command
lines. No gpg is needed on the host: apt's ``signed-by`` accepts the binary keyring that
``gpg --dearmor`` writes, and that is only the armour's base64 decoded, which we do here;
the fingerprint is a hash over the public key packet, which we compute here as well.

Commands are argv lists for ``module.run_command``; their output is parsed by the
``parse_*`` functions, so the module only runs and reports.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile

# ---------------------------------------------------------------------------------------------
# NVIDIA's repository, as https://nvidia.github.io/libnvidia-container/ publishes it

NVIDIA_BASE_URL = 'https://nvidia.github.io/libnvidia-container'
# The primary key of "NVIDIA CORPORATION (Open Source Projects) <cudatools@nvidia.com>", the
# key served at <base>/gpgkey since 2017 (key ID DDCAE044F796ECB0); its signing subkey
# changes now and then, the primary stays. Overridable, because NVIDIA may rotate it.
NVIDIA_KEY_FINGERPRINT = 'C95B321B61E88C1809C4F759DDCAE044F796ECB0'
NVIDIA_REPO_NAME = 'nvidia-container-toolkit'
NVIDIA_PACKAGES = (
    'nvidia-container-toolkit',
    'nvidia-container-toolkit-base',
    'libnvidia-container-tools',
    'libnvidia-container1',
)
CHANNELS = ('stable', 'experimental')
PACKAGE_MANAGERS = ('apt', 'dnf', 'yum', 'zypper')
# The binary that marks each package manager, in the order auto-detection tries them:
# zypper before dnf because openSUSE can carry dnf beside its own zypper.
PACKAGE_MANAGER_BINARIES = (('apt', 'apt-get'), ('zypper', 'zypper'), ('dnf', 'dnf'), ('yum', 'yum'))

DEFAULT_PATHS = {
    'apt': {
        'keyring': '/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg',
        'deb822': '/etc/apt/sources.list.d/nvidia-container-toolkit.sources',
        'list': '/etc/apt/sources.list.d/nvidia-container-toolkit.list',
    },
    'dnf': {
        'keyring': '/etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit',
        'repo': '/etc/yum.repos.d/nvidia-container-toolkit.repo',
    },
    'zypper': {
        'keyring': '/etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit',
        'repo': '/etc/zypp/repos.d/nvidia-container-toolkit.repo',
    },
}
DEFAULT_PATHS['yum'] = DEFAULT_PATHS['dnf']

# What dnf and yum on RHEL-likes read for TLS; NVIDIA's own .repo names it.
RPM_CA_BUNDLE = '/etc/pki/tls/certs/ca-bundle.crt'


class PackageRepoError(Exception):
    """Input or data this module cannot use; the message says what and what to do."""


class OpenPGPError(PackageRepoError):
    """A key that cannot be read as an OpenPGP public key."""


class FingerprintMismatch(PackageRepoError):
    """The key is readable but is not the pinned one."""


# ---------------------------------------------------------------------------------------------
# Architectures

_DEB_ARCHES = {'x86_64': 'amd64', 'amd64': 'amd64', 'aarch64': 'arm64', 'arm64': 'arm64'}
_RPM_ARCHES = {'x86_64': 'x86_64', 'amd64': 'x86_64', 'aarch64': 'aarch64', 'arm64': 'aarch64'}


def _arch(machine, table, family):
    arch = table.get((machine or '').strip().lower())
    if arch is None:
        raise PackageRepoError('architecture %r has no NVIDIA Container Toolkit %s packages; '
                               'NVIDIA builds them for x86_64 (amd64) and aarch64 (arm64) only' % (machine, family))
    return arch


def deb_arch(machine):
    """Debian's name for ``uname -m``'s: x86_64 -> amd64, aarch64 -> arm64; anything else fails."""
    return _arch(machine, _DEB_ARCHES, 'deb')


def rpm_arch(machine):
    """RPM's name for ``uname -m``'s (x86_64, aarch64 as they are); anything else fails."""
    return _arch(machine, _RPM_ARCHES, 'rpm')


# ---------------------------------------------------------------------------------------------
# Repository files


def nvidia_repo_url(base_url, channel, family, arch=None):
    """``<base>/<channel>/deb/<arch>`` for apt, ``<base>/<channel>/rpm/$basearch`` for dnf, yum and zypper.

    The deb URL names the architecture instead of using apt's ``$(ARCH)``: with a foreign
    architecture enabled (``dpkg --add-architecture i386``) ``$(ARCH)`` would make apt fetch
    ``deb/i386``, which NVIDIA does not publish, and ``apt-get update`` would fail.
    """
    if channel not in CHANNELS:
        raise PackageRepoError('channel must be one of %s, not %r' % (', '.join(CHANNELS), channel))
    base = base_url.rstrip('/')
    if family == 'deb':
        return '%s/%s/deb/%s' % (base, channel, arch)
    # dnf, yum and zypper expand $basearch themselves, so one file serves every architecture.
    return '%s/%s/rpm/$basearch' % (base, channel)


def render_deb822(uris, suites, signed_by, components=(), architectures=(), types=('deb',), enabled=True):
    """A deb822 ``.sources`` stanza (``man 5 sources.list``).

    A flat repository, such as NVIDIA's, has the suite ``/`` (a path ending in a slash) and
    no ``Components`` field; apt refuses Components on a flat repository.
    """
    suites = _as_list(suites)
    components = _as_list(components)
    flat = any(suite.endswith('/') for suite in suites)
    if flat and components:
        raise PackageRepoError('a flat repository (suite ending in "/") takes no components')
    if not flat and not components:
        raise PackageRepoError('a repository with a distribution suite needs components, for example main')
    lines = [
        'Types: %s' % ' '.join(_as_list(types)),
        'URIs: %s' % ' '.join(_as_list(uris)),
        'Suites: %s' % ' '.join(suites),
    ]
    if components:
        lines.append('Components: %s' % ' '.join(components))
    if architectures:
        lines.append('Architectures: %s' % ' '.join(_as_list(architectures)))
    lines.append('Signed-By: %s' % signed_by)
    if not enabled:
        lines.append('Enabled: no')
    return '\n'.join(lines) + '\n'


def render_deb_list(uri, suite, signed_by, components=(), architectures=()):
    """The one-line ``.list`` form: ``deb [arch=.. signed-by=..] URI suite [components]``."""
    options = []
    if architectures:
        options.append('arch=%s' % ','.join(_as_list(architectures)))
    options.append('signed-by=%s' % signed_by)
    words = ['deb', '[%s]' % ' '.join(options), uri, suite] + _as_list(components)
    return ' '.join(words) + '\n'


def render_rpm_repo(section, values):
    """An INI ``.repo`` file with one section; ``values`` is a list of (key, value) in the order written."""
    lines = ['[%s]' % section]
    for key, value in values:
        if isinstance(value, bool):
            value = 1 if value else 0
        lines.append('%s=%s' % (key, value))
    return '\n'.join(lines) + '\n'


def nvidia_repo_file(package_manager, base_url, channel, machine, keyring_path, repo_format='deb822'):
    """The text of NVIDIA's repository file for ``package_manager``, signed by the key at ``keyring_path``."""
    if package_manager == 'apt':
        arch = deb_arch(machine)
        uri = nvidia_repo_url(base_url, channel, 'deb', arch)
        if repo_format == 'list':
            return render_deb_list(uri, '/', keyring_path, architectures=[arch])
        if repo_format != 'deb822':
            raise PackageRepoError('repo_format must be deb822 or list, not %r' % (repo_format,))
        return render_deb822([uri], ['/'], keyring_path, architectures=[arch])
    if package_manager not in PACKAGE_MANAGERS:
        raise PackageRepoError('unknown package manager %r' % (package_manager,))
    rpm_arch(machine)  # refuse an architecture NVIDIA does not build for, as for apt
    baseurl = nvidia_repo_url(base_url, channel, 'rpm')
    name = NVIDIA_REPO_NAME if channel == 'stable' else '%s-%s' % (NVIDIA_REPO_NAME, channel)
    # NVIDIA signs the repository metadata, not each package: repo_gpgcheck=1, gpgcheck=0.
    # gpgkey points at the key this module checked and wrote, so dnf never fetches a key
    # of its own choosing from the network.
    values = [
        ('name', name),
        ('baseurl', baseurl),
        ('repo_gpgcheck', True),
        ('gpgcheck', False),
        ('enabled', True),
        ('gpgkey', 'file://%s' % keyring_path),
    ]
    if package_manager == 'zypper':
        # libzypp has no sslcacert key and SUSE keeps its CA bundle elsewhere; it verifies TLS by default.
        values += [('autorefresh', True), ('type', 'rpm-md')]
    else:
        values += [('sslverify', True), ('sslcacert', RPM_CA_BUNDLE)]
    return render_rpm_repo(NVIDIA_REPO_NAME, values)


def default_paths(package_manager, repo_format='deb822'):
    """``(repo_path, keyring_path)`` where each package manager looks by default."""
    paths = DEFAULT_PATHS[package_manager]
    repo = paths[repo_format] if package_manager == 'apt' else paths['repo']
    return repo, paths['keyring']


def _as_list(value):
    if isinstance(value, str):
        return [value]
    return list(value)


# ---------------------------------------------------------------------------------------------
# OpenPGP: armour (RFC 9580 section 6)

_CRC24_INIT = 0xB704CE
_CRC24_POLY = 0x1864CFB
_ARMOR_BEGIN = re.compile(r'^-----BEGIN PGP ([A-Z ,0-9/]+)-----\s*$')
_ARMOR_END = re.compile(r'^-----END PGP ([A-Z ,0-9/]+)-----\s*$')
_CHECKSUM_LINE = re.compile(r'^=([A-Za-z0-9+/]{4})$')


def crc24(data):
    """The CRC-24 of OpenPGP's armour checksum."""
    crc = _CRC24_INIT
    for byte in data:
        crc ^= byte << 16
        for _bit in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
    return crc & 0xFFFFFF


def armor(data, block='PUBLIC KEY BLOCK'):
    """ASCII-armour binary OpenPGP data the way gpg does: 64 characters a line and a CRC-24 line."""
    encoded = base64.b64encode(data).decode('ascii')
    lines = ['-----BEGIN PGP %s-----' % block, '']
    lines += [encoded[i:i + 64] for i in range(0, len(encoded), 64)]
    lines.append('=' + base64.b64encode(crc24(data).to_bytes(3, 'big')).decode('ascii'))
    lines.append('-----END PGP %s-----' % block)
    return '\n'.join(lines) + '\n'


def is_armored(data):
    """True for armoured text; binary OpenPGP data starts with a packet tag byte, whose top bit is set."""
    if isinstance(data, str):
        return True
    return bool(data) and not data[0] & 0x80


def dearmor(data):
    """The binary packets inside armoured ``data`` (str or bytes), as ``gpg --dearmor`` writes them.

    Several armoured blocks in one file are joined, as gpg joins them. A checksum line,
    when present, must match the CRC-24 of the decoded block (RFC 9580 makes it optional).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode('ascii')
        except UnicodeDecodeError:
            raise OpenPGPError('the key is neither binary OpenPGP data nor ASCII armour') from None
    blocks = []
    lines = data.splitlines()
    index = 0
    while index < len(lines):
        begin = _ARMOR_BEGIN.match(lines[index].strip())
        index += 1
        if not begin:
            continue
        index = _skip_armor_headers(lines, index)
        body = []
        checksum = None
        while True:
            if index >= len(lines):
                raise OpenPGPError('the armoured %s has no END line' % begin.group(1))
            line = lines[index].strip()
            index += 1
            if _ARMOR_END.match(line):
                break
            match = _CHECKSUM_LINE.match(line)
            if match:
                checksum = match.group(1)
            elif line:
                body.append(line)
        try:
            packets = base64.b64decode(''.join(body), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise OpenPGPError('the armoured %s is not valid base64: %s' % (begin.group(1), exc)) from None
        if checksum is not None:
            wanted = int.from_bytes(base64.b64decode(checksum), 'big')
            got = crc24(packets)
            if wanted != got:
                raise OpenPGPError('the armoured %s is damaged: its CRC-24 checksum is %06X but the data gives %06X'
                                   % (begin.group(1), wanted, got))
        blocks.append(packets)
    if not blocks:
        raise OpenPGPError('no "-----BEGIN PGP PUBLIC KEY BLOCK-----" armour found in the key')
    return b''.join(blocks)


def _skip_armor_headers(lines, index):
    """Skip ``Version:``/``Comment:`` headers and the blank line after them; tolerate a missing blank line."""
    start = index
    while index < len(lines):
        line = lines[index].strip()
        if not line:
            return index + 1
        if ': ' not in line:
            # Base64 never holds ": ", so this is data: the writer left out the blank line.
            return start if index == start else index
        index += 1
    return index


def to_binary(data):
    """Binary OpenPGP packets from armoured or binary ``data`` (str or bytes)."""
    if not data:
        raise OpenPGPError('the key is empty')
    if is_armored(data):
        return dearmor(data)
    return bytes(data)


# ---------------------------------------------------------------------------------------------
# OpenPGP: packets and fingerprints (RFC 9580 sections 4 and 5.5)

TAG_SIGNATURE = 2
TAG_SECRET_KEY = 5
TAG_PUBLIC_KEY = 6
TAG_SECRET_SUBKEY = 7
TAG_MARKER = 10
TAG_TRUST = 12
TAG_USER_ID = 13
TAG_PUBLIC_SUBKEY = 14


def iter_packets(data):
    """Yield ``(tag, body)`` for each packet in binary ``data``, old and new header formats alike."""
    pos = 0
    size = len(data)
    while pos < size:
        header = data[pos]
        pos += 1
        if not header & 0x80:
            raise OpenPGPError('byte %d is not the start of an OpenPGP packet' % (pos - 1))
        if header & 0x40:
            tag = header & 0x3F
            body = bytearray()
            while True:
                length, pos, partial = _new_length(data, pos)
                body += _take(data, pos, length)
                pos += length
                if not partial:
                    break
            yield tag, bytes(body)
        else:
            tag = (header >> 2) & 0x0F
            length_type = header & 0x03
            if length_type == 3:
                # Indeterminate length: the packet runs to the end of the data.
                length = size - pos
            else:
                width = (1, 2, 4)[length_type]
                length = int.from_bytes(_take(data, pos, width), 'big')
                pos += width
            yield tag, _take(data, pos, length)
            pos += length


def _new_length(data, pos):
    first = _take(data, pos, 1)[0]
    if first < 192:
        return first, pos + 1, False
    if first < 224:
        second = _take(data, pos + 1, 1)[0]
        return ((first - 192) << 8) + second + 192, pos + 2, False
    if first == 255:
        return int.from_bytes(_take(data, pos + 1, 4), 'big'), pos + 5, False
    return 1 << (first & 0x1F), pos + 1, True


def _take(data, pos, length):
    if pos + length > len(data):
        raise OpenPGPError('the key data is truncated (a packet needs %d bytes at byte %d, %d are left)'
                           % (length, pos, max(len(data) - pos, 0)))
    return data[pos:pos + length]


def fingerprint(body):
    """The fingerprint of a public key or subkey packet body (upper-case hex).

    v4: SHA-1 over 0x99, the two-byte body length and the body. v5 and v6 hash with SHA-256
    over 0x9A or 0x9B and a four-byte length. v3 and older keys (MD5-based, obsolete since
    1998) are refused.
    """
    if not body:
        raise OpenPGPError('a public key packet is empty')
    version = body[0]
    if version == 4:
        if len(body) > 0xFFFF:
            raise OpenPGPError('a v4 public key packet is longer than 65535 bytes')
        digest = hashlib.sha1(b'\x99' + len(body).to_bytes(2, 'big') + body).hexdigest()
    elif version in (5, 6):
        prefix = b'\x9a' if version == 5 else b'\x9b'
        digest = hashlib.sha256(prefix + len(body).to_bytes(4, 'big') + body).hexdigest()
    else:
        raise OpenPGPError('a v%d public key cannot be used; only v4, v5 and v6 keys have fingerprints apt and gpg trust'
                           % version)
    return digest.upper()


def public_keys(data):
    """Parse a public key file (armoured or binary) into ``[{'fingerprint', 'subkeys', 'user_ids'}]``, one per primary key.

    A secret key is refused: it has no business in a world-readable keyring.
    """
    keys = []
    for tag, body in iter_packets(to_binary(data)):
        if tag in (TAG_SECRET_KEY, TAG_SECRET_SUBKEY):
            raise OpenPGPError('the key file holds a secret key; give the public key only (gpg --export, not --export-secret-keys)')
        if tag == TAG_PUBLIC_KEY:
            keys.append({'fingerprint': fingerprint(body), 'subkeys': [], 'user_ids': []})
        elif tag in (TAG_MARKER, TAG_TRUST):
            continue
        elif not keys:
            raise OpenPGPError('the key data does not start with a public key packet (found packet type %d)' % tag)
        elif tag == TAG_PUBLIC_SUBKEY:
            keys[-1]['subkeys'].append(fingerprint(body))
        elif tag == TAG_USER_ID:
            keys[-1]['user_ids'].append(body.decode('utf-8', errors='replace'))
    if not keys:
        raise OpenPGPError('the key data holds no public key')
    return keys


def normalize_fingerprint(value):
    """Upper-case hex without spaces, colons or a 0x prefix; a short or long key ID is refused."""
    text = re.sub(r'[\s:]', '', str(value or '')).upper()
    if text.startswith('0X'):
        text = text[2:]
    if not re.fullmatch(r'[0-9A-F]+', text or '-'):
        raise PackageRepoError('%r is not a key fingerprint: give the 40 hexadecimal digits gpg shows (64 for a v6 key)' % (value,))
    if len(text) not in (40, 64):
        raise PackageRepoError('%r has %d hexadecimal digits; give the whole fingerprint (40, or 64 for a v6 key), '
                               'because a key ID is easy to forge' % (value, len(text)))
    return text


def check_fingerprint(key_bytes, expected, source='the key'):
    """Check that ``key_bytes`` (armoured or binary) holds exactly the pinned primary key.

    Returns ``{'keyring': <binary packets>, 'fingerprint': ..., 'subkeys': [...], 'user_ids': [...]}``.
    Raises FingerprintMismatch, with both fingerprints in the message, when the primary key
    differs, and also when the file holds a second primary key: apt trusts every key in a
    ``signed-by`` keyring, so an extra key would be trusted without having been pinned.
    """
    wanted = normalize_fingerprint(expected)
    binary = to_binary(key_bytes)
    keys = public_keys(binary)
    got = [key['fingerprint'] for key in keys]
    if any(fpr != wanted for fpr in got):
        if len(got) == 1:
            subkey_note = ' (%s is one of its subkeys; pin the primary key)' % wanted if wanted in keys[0]['subkeys'] else ''
            raise FingerprintMismatch('key fingerprint mismatch for %s: expected %s, got %s%s'
                                      % (source, wanted, got[0], subkey_note))
        raise FingerprintMismatch('key fingerprint mismatch for %s: expected only %s, got %d primary keys: %s'
                                  % (source, wanted, len(got), ', '.join(got)))
    return {'keyring': binary, 'fingerprint': wanted, 'subkeys': keys[0]['subkeys'], 'user_ids': keys[0]['user_ids']}


def describe_keyring(data):
    """One line a person can read for a diff: the fingerprints in a keyring, or why they cannot be read."""
    if data is None:
        return ''
    try:
        keys = public_keys(data)
    except PackageRepoError as exc:
        return 'unreadable key: %s\n' % exc
    lines = []
    for key in keys:
        lines.append('fingerprint: %s' % key['fingerprint'])
        lines += ['  subkey: %s' % sub for sub in key['subkeys']]
        lines += ['  uid: %s' % uid for uid in key['user_ids']]
    return '\n'.join(lines) + '\n'


def keyring_bytes(package_manager, binary):
    """What the keyring file holds: binary packets for apt's signed-by, armour for rpm, which wants ASCII keys."""
    if package_manager == 'apt':
        return binary
    return armor(binary).encode('ascii')


# ---------------------------------------------------------------------------------------------
# Package managers: command lines and their output


def detect_package_manager(which):
    """The first package manager whose binary ``which(name)`` finds, or None."""
    for manager, binary in PACKAGE_MANAGER_BINARIES:
        if which(binary):
            return manager
    return None


def package_spec(package_manager, name, version):
    """``name=version`` for apt and zypper, ``name-version`` for dnf and yum; the bare name for latest."""
    if version is None or version == 'latest':
        return name
    if package_manager in ('dnf', 'yum'):
        return '%s-%s' % (name, version)
    return '%s=%s' % (name, version)


def version_matches(installed, wanted):
    """True when an installed ``version-release`` is what ``wanted`` asks for.

    ``wanted`` without a release (``1.17.8``) matches any release of that version, as dnf and
    zypper treat it; an epoch the package database reports (``1:1.17.8-1``) is ignored.
    """
    if installed is None:
        return False
    if wanted is None or wanted == 'latest':
        return True
    installed = installed.split(':', 1)[1] if ':' in installed.split('-', 1)[0] else installed
    wanted = wanted.split(':', 1)[1] if ':' in wanted.split('-', 1)[0] else wanted
    if installed == wanted:
        return True
    return '-' not in wanted and installed.rsplit('-', 1)[0] == wanted


def query_command(package_manager, packages):
    """Ask the package database which of ``packages`` are installed, and at which version."""
    if package_manager == 'apt':
        return ['dpkg-query', '-W', '-f', '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'] + list(packages)
    return ['rpm', '-q', '--qf', '%{NAME}\\t%{VERSION}-%{RELEASE}\\n'] + list(packages)


def parse_installed(package_manager, packages, stdout):
    """``{name: version or None}`` from ``query_command``'s output.

    dpkg-query also lists packages that were removed but whose configuration stays
    (status ``rc``); only ``ii`` (and ``hi``, held) count as installed. rpm prints
    "package X is not installed" for the others, which has no tab and is skipped.
    """
    found = {name: None for name in packages}
    for line in (stdout or '').splitlines():
        fields = line.split('\t')
        if len(fields) < 2 or fields[0] not in found:
            continue
        if package_manager == 'apt':
            status = fields[2].strip() if len(fields) > 2 else ''
            if status not in ('ii', 'hi'):
                continue
        found[fields[0]] = fields[1].strip() or None
    return found


def refresh_commands(package_manager, repo_path, keyring_path, repo_id=NVIDIA_REPO_NAME):
    """Refresh the metadata of this one repository after it changed (or before an install needs it)."""
    if package_manager == 'apt':
        # Only this source, so the refresh takes a second instead of fetching every mirror.
        # List-Cleanup=0 keeps the other sources' lists, which apt would otherwise delete as
        # "no longer configured" because this update sees no other source.
        return [['apt-get', 'update',
                 '-o', 'Dir::Etc::sourcelist=%s' % repo_path,
                 '-o', 'Dir::Etc::sourceparts=-',
                 '-o', 'APT::Get::List-Cleanup=0']]
    if package_manager == 'zypper':
        # zypper trusts the keys in the rpm database; importing the checked key first means
        # no --gpg-auto-import-keys, which would trust whatever key the server offers.
        return [['rpm', '--import', keyring_path],
                ['zypper', '--non-interactive', 'refresh', repo_id]]
    # -y lets dnf import the gpgkey= of the .repo file (the checked key) for repo_gpgcheck.
    return [[package_manager, '-y', 'makecache', '--disablerepo=*', '--enablerepo=%s' % repo_id]]


def install_commands(package_manager, packages, version, installed=None, allow_downgrade=False):
    """The commands that install ``packages`` at ``version`` (or the newest for ``latest``).

    apt and zypper install and upgrade with one command. dnf and yum ``install`` leave an
    installed package alone when no version is named, so for ``latest`` the installed ones
    are upgraded by a second command.
    """
    installed = installed or {}
    specs = [package_spec(package_manager, name, version) for name in packages]
    if package_manager == 'apt':
        # confdef/confold: an upgrade keeps a changed /etc/nvidia-container-runtime/config.toml
        # instead of stopping at dpkg's question, which -y does not answer.
        argv = ['apt-get', 'install', '-y', '--no-install-recommends',
                '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold']
        if allow_downgrade:
            argv.append('--allow-downgrades')
        return [argv + specs]
    if package_manager == 'zypper':
        argv = ['zypper', '--non-interactive', 'install']
        if allow_downgrade:
            argv.append('--oldpackage')
        return [argv + specs]
    if version == 'latest':
        missing = [name for name in packages if installed.get(name) is None]
        present = [name for name in packages if installed.get(name) is not None]
        commands = []
        if missing:
            commands.append([package_manager, 'install', '-y'] + missing)
        if present:
            commands.append([package_manager, 'upgrade', '-y'] + present)
        return commands
    # dnf install with a named version upgrades or downgrades to it as needed.
    return [[package_manager, 'install', '-y'] + specs]


def remove_command(package_manager, packages):
    """Remove ``packages`` (their configuration stays, as apt-get remove leaves it)."""
    if package_manager == 'apt':
        return ['apt-get', 'remove', '-y'] + list(packages)
    if package_manager == 'zypper':
        return ['zypper', '--non-interactive', 'remove'] + list(packages)
    return [package_manager, 'remove', '-y'] + list(packages)


# ---------------------------------------------------------------------------------------------
# Files


def read_bytes(path):
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, 'rb') as handle:
            return handle.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise PackageRepoError('%s is a directory, not a file' % path) from None
    except OSError as exc:
        raise PackageRepoError('%s cannot be read: %s' % (path, exc.strerror)) from None


def write_atomic(path, data, mode=0o644):
    """Write ``data`` (bytes) so that apt or dnf, reading at any moment, sees the old file or the new one.

    Temporary file in the same directory, fsync, chmod to ``mode`` (whatever the umask),
    rename. A missing directory is created with mode 0755 (/etc/pki/rpm-gpg is missing
    on a fresh SUSE host).
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.tmp', dir=directory)
    except OSError as exc:
        raise PackageRepoError('%s cannot be written: %s' % (path, exc.strerror)) from None
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_path, mode)
        os.rename(tmp_path, path)
    except BaseException as exc:
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise PackageRepoError('%s cannot be written: %s' % (path, exc.strerror or exc)) from None
        raise


def remove_file(path):
    """Remove ``path``; True when there was a file to remove."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise PackageRepoError('%s cannot be removed: %s' % (path, exc.strerror)) from None
    return True
