# -*- coding: utf-8 -*-
# Copyright (c) 2025, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hyp_settings, strategies as st

from ansible_collections.ragops.gpu_stack.plugins.module_utils import package_repo as pr

FIXTURES = Path(__file__).resolve().parents[2] / 'fixtures' / 'package_repo'
# gpg's own answers, recorded when the fixture keys were made (see the fixture README).
TEST_FPR, TEST_SUBKEY_FPR = (FIXTURES / 'test-key.fingerprints').read_text(encoding='utf-8').split()
OTHER_FPR = (FIXTURES / 'other-key.fingerprints').read_text(encoding='utf-8').strip()
TEST_ASC = (FIXTURES / 'test-key.asc').read_text(encoding='utf-8')
TEST_GPG = (FIXTURES / 'test-key.gpg').read_bytes()
OTHER_ASC = (FIXTURES / 'other-key.asc').read_text(encoding='utf-8')

relaxed = hyp_settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# Repository files: golden strings

APT_DEB822 = """\
Types: deb
URIs: https://nvidia.github.io/libnvidia-container/stable/deb/amd64
Suites: /
Architectures: amd64
Signed-By: /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
"""

APT_LIST = ('deb [arch=arm64 signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg] '
            'https://nvidia.github.io/libnvidia-container/stable/deb/arm64 /\n')

DNF_REPO = """\
[nvidia-container-toolkit]
name=nvidia-container-toolkit
baseurl=https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch
repo_gpgcheck=1
gpgcheck=0
enabled=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit
sslverify=1
sslcacert=/etc/pki/tls/certs/ca-bundle.crt
"""

ZYPPER_REPO = """\
[nvidia-container-toolkit]
name=nvidia-container-toolkit-experimental
baseurl=https://mirror.example/nvidia/experimental/rpm/$basearch
repo_gpgcheck=1
gpgcheck=0
enabled=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-nvidia-container-toolkit
autorefresh=1
type=rpm-md
"""


def test_apt_deb822_golden():
    text = pr.nvidia_repo_file('apt', pr.NVIDIA_BASE_URL, 'stable', 'x86_64', pr.DEFAULT_PATHS['apt']['keyring'])
    assert text == APT_DEB822


def test_apt_list_golden():
    text = pr.nvidia_repo_file('apt', pr.NVIDIA_BASE_URL, 'stable', 'aarch64', pr.DEFAULT_PATHS['apt']['keyring'], 'list')
    assert text == APT_LIST


def test_dnf_and_yum_golden():
    for manager in ('dnf', 'yum'):
        text = pr.nvidia_repo_file(manager, pr.NVIDIA_BASE_URL, 'stable', 'x86_64', pr.DEFAULT_PATHS[manager]['keyring'])
        assert text == DNF_REPO


def test_zypper_golden_experimental_mirror():
    text = pr.nvidia_repo_file('zypper', 'https://mirror.example/nvidia/', 'experimental', 'aarch64',
                               pr.DEFAULT_PATHS['zypper']['keyring'])
    assert text == ZYPPER_REPO


def test_deb822_with_a_distribution_suite_has_components():
    text = pr.render_deb822(['https://download.docker.com/linux/debian'], 'bookworm', '/etc/apt/keyrings/docker.asc',
                            components=['stable'], architectures=['amd64', 'arm64'], enabled=False)
    assert text == ('Types: deb\nURIs: https://download.docker.com/linux/debian\nSuites: bookworm\nComponents: stable\n'
                    'Architectures: amd64 arm64\nSigned-By: /etc/apt/keyrings/docker.asc\nEnabled: no\n')


def test_deb822_refuses_components_on_a_flat_repo_and_none_on_a_suite():
    with pytest.raises(pr.PackageRepoError, match='flat repository'):
        pr.render_deb822('https://x', '/', '/k', components='main')
    with pytest.raises(pr.PackageRepoError, match='needs components'):
        pr.render_deb822('https://x', 'bookworm', '/k')


def test_deb_list_with_components():
    assert pr.render_deb_list('https://x/debian', 'bookworm', '/k', ['stable']) == 'deb [signed-by=/k] https://x/debian bookworm stable\n'


def test_experimental_deb_url_and_unknown_channel():
    assert pr.nvidia_repo_url('https://h/p/', 'experimental', 'deb', 'arm64') == 'https://h/p/experimental/deb/arm64'
    with pytest.raises(pr.PackageRepoError, match='channel'):
        pr.nvidia_repo_url('https://h', 'nightly', 'deb', 'amd64')


def test_unknown_repo_format_and_manager():
    with pytest.raises(pr.PackageRepoError, match='repo_format'):
        pr.nvidia_repo_file('apt', pr.NVIDIA_BASE_URL, 'stable', 'x86_64', '/k', 'yaml')
    with pytest.raises(pr.PackageRepoError, match='unknown package manager'):
        pr.nvidia_repo_file('pacman', pr.NVIDIA_BASE_URL, 'stable', 'x86_64', '/k')


def test_default_paths():
    assert pr.default_paths('apt') == ('/etc/apt/sources.list.d/nvidia-container-toolkit.sources',
                                       '/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg')
    assert pr.default_paths('apt', 'list')[0] == '/etc/apt/sources.list.d/nvidia-container-toolkit.list'
    assert pr.default_paths('yum')[0] == '/etc/yum.repos.d/nvidia-container-toolkit.repo'
    assert pr.default_paths('zypper')[0] == '/etc/zypp/repos.d/nvidia-container-toolkit.repo'


# ---------------------------------------------------------------------------------------------
# Architectures


@pytest.mark.parametrize('machine, deb, rpm', [
    ('x86_64', 'amd64', 'x86_64'),
    ('aarch64', 'arm64', 'aarch64'),
    ('amd64', 'amd64', 'x86_64'),
    ('arm64', 'arm64', 'aarch64'),
])
def test_arch_mapping(machine, deb, rpm):
    assert pr.deb_arch(machine) == deb
    assert pr.rpm_arch(machine) == rpm


@pytest.mark.parametrize('machine', ['ppc64le', 'armv7l', 'i686', 's390x', '', None])
def test_other_architectures_are_refused_clearly(machine):
    with pytest.raises(pr.PackageRepoError, match=r'x86_64 \(amd64\) and aarch64 \(arm64\) only'):
        pr.deb_arch(machine)
    with pytest.raises(pr.PackageRepoError, match='rpm packages'):
        pr.rpm_arch(machine)
    with pytest.raises(pr.PackageRepoError):
        pr.nvidia_repo_file('dnf', pr.NVIDIA_BASE_URL, 'stable', machine, '/k')


# ---------------------------------------------------------------------------------------------
# Armour


def test_crc24_check_value():
    # The CRC-24/OPENPGP catalogue check value, and the initial value for no data.
    assert pr.crc24(b'123456789') == 0x21CF02
    assert pr.crc24(b'') == 0xB704CE


def test_dearmor_gives_what_gpg_exports_in_binary():
    assert pr.dearmor(TEST_ASC) == TEST_GPG
    assert pr.dearmor(TEST_ASC.encode('ascii')) == TEST_GPG


def test_armor_writes_what_gpg_writes():
    assert pr.armor(TEST_GPG) == TEST_ASC


@relaxed
@given(st.binary(max_size=400))
def test_armor_round_trip(data):
    assert pr.dearmor(pr.armor(data)) == data


def _checksum_line(text):
    return next(line for line in text.splitlines() if line.startswith('=') and len(line) == 5)


def test_damaged_body_fails_the_crc_check():
    lines = TEST_ASC.splitlines()
    # Swap two different characters inside the first line of base64: still valid base64, different bytes.
    body = lines[2]
    index = next(i for i in range(10, len(body) - 1) if body[i] != body[i + 1])
    lines[2] = body[:index] + body[index + 1] + body[index] + body[index + 2:]
    with pytest.raises(pr.OpenPGPError, match='CRC-24 checksum is [0-9A-F]{6} but the data gives'):
        pr.dearmor('\n'.join(lines) + '\n')


def test_wrong_checksum_line_fails():
    line = _checksum_line(TEST_ASC)
    wrong = '=' + base64.b64encode(((pr.crc24(TEST_GPG) ^ 1)).to_bytes(3, 'big')).decode('ascii')
    with pytest.raises(pr.OpenPGPError, match='damaged'):
        pr.dearmor(TEST_ASC.replace(line, wrong))


def test_armour_without_checksum_headers_or_crlf_is_accepted():
    # RFC 9580 makes the checksum optional; old gpg wrote Version: headers; Windows writes CRLF.
    text = TEST_ASC.replace(_checksum_line(TEST_ASC) + '\n', '')
    text = text.replace('BLOCK-----\n\n', 'BLOCK-----\nVersion: GnuPG v1\nComment: test\n\n')
    assert pr.dearmor(text.replace('\n', '\r\n')) == TEST_GPG


def test_armour_without_the_blank_line_is_accepted():
    assert pr.dearmor(TEST_ASC.replace('BLOCK-----\n\n', 'BLOCK-----\n')) == TEST_GPG


def test_two_armoured_blocks_are_joined_like_gpg_dearmor():
    assert pr.dearmor('junk before\n' + TEST_ASC + OTHER_ASC) == TEST_GPG + pr.dearmor(OTHER_ASC)


def test_bad_armour():
    with pytest.raises(pr.OpenPGPError, match='no "-----BEGIN PGP PUBLIC KEY BLOCK-----"'):
        pr.dearmor('<html>404 Not Found</html>')
    with pytest.raises(pr.OpenPGPError, match='no END line'):
        pr.dearmor(TEST_ASC.split('-----END')[0])
    with pytest.raises(pr.OpenPGPError, match='not valid base64'):
        pr.dearmor(TEST_ASC.replace(TEST_ASC.splitlines()[2], TEST_ASC.splitlines()[2][:-1] + '!'))
    with pytest.raises(pr.OpenPGPError, match='neither binary'):
        pr.dearmor(b'\x01\xff\xfe')
    with pytest.raises(pr.OpenPGPError, match='empty'):
        pr.to_binary(b'')


# ---------------------------------------------------------------------------------------------
# Packets and fingerprints, checked against gpg's own numbers


def test_fingerprints_match_gpg_for_armoured_and_binary():
    for data in (TEST_ASC, TEST_ASC.encode('ascii'), TEST_GPG):
        keys = pr.public_keys(data)
        assert [key['fingerprint'] for key in keys] == [TEST_FPR]
        assert keys[0]['subkeys'] == [TEST_SUBKEY_FPR]
        assert keys[0]['user_ids'] == ['ragops test signing key <test-signing@ragops.invalid>']


def test_rsa_key_fingerprint_matches_gpg():
    assert [key['fingerprint'] for key in pr.public_keys(OTHER_ASC)] == [OTHER_FPR]


def _new_format(data, partial_tags=()):
    """Re-encode ``data``'s packets with new-format headers, varying the length encodings.

    Tags in ``partial_tags`` get partial body lengths (legal only for data packets, but a
    reader must still walk them).
    """
    out = bytearray()
    for number, (tag, body) in enumerate(pr.iter_packets(data)):
        out.append(0xC0 | tag)
        if tag in partial_tags and len(body) > 2:
            out.append(0xE0 | 1)  # a partial chunk of 2 bytes
            out += body[:2]
            body = body[2:]
        if number % 2 == 0 and len(body) < 192:
            out.append(len(body))
        elif 192 <= len(body) < 8384:
            value = len(body) - 192
            out += bytes([(value >> 8) + 192, value & 0xFF])
        else:
            out.append(0xFF)
            out += len(body).to_bytes(4, 'big')
        out += body
    return bytes(out)


def test_new_format_headers_give_the_same_fingerprints():
    for source in (TEST_GPG, pr.dearmor(OTHER_ASC)):
        reencoded = _new_format(source, partial_tags=(pr.TAG_USER_ID,))
        assert reencoded != source
        assert pr.public_keys(reencoded) == pr.public_keys(source)


def test_old_format_two_byte_four_byte_and_indeterminate_lengths():
    packets = list(pr.iter_packets(TEST_GPG))
    tag, body = packets[0]
    two = bytes([0x80 | (tag << 2) | 1]) + len(body).to_bytes(2, 'big') + body
    four = bytes([0x80 | (tag << 2) | 2]) + len(body).to_bytes(4, 'big') + body
    rest = bytes([0x80 | (tag << 2) | 3]) + body
    for data in (two, four, rest):
        assert list(pr.iter_packets(data)) == [(tag, body)]


def test_v6_and_v5_fingerprints_use_sha256():
    body = bytes([6]) + b'\x00' * 9
    assert pr.fingerprint(body) == hashlib.sha256(b'\x9b' + len(body).to_bytes(4, 'big') + body).hexdigest().upper()
    body = bytes([5]) + b'\x00' * 9
    assert pr.fingerprint(body) == hashlib.sha256(b'\x9a' + len(body).to_bytes(4, 'big') + body).hexdigest().upper()


def test_v3_keys_and_truncated_data_are_refused():
    with pytest.raises(pr.OpenPGPError, match='v3 public key'):
        pr.fingerprint(bytes([3]) + b'\x00' * 8)
    with pytest.raises(pr.OpenPGPError, match='truncated'):
        pr.public_keys(TEST_GPG[:-5])
    with pytest.raises(pr.OpenPGPError, match='not the start of an OpenPGP packet'):
        list(pr.iter_packets(TEST_GPG + b'\x01'))


def test_secret_keys_are_refused():
    tag, body = next(pr.iter_packets(TEST_GPG))
    secret = bytes([0xC0 | pr.TAG_SECRET_KEY, len(body)]) + body
    with pytest.raises(pr.OpenPGPError, match='secret key'):
        pr.public_keys(secret)


def test_data_that_does_not_start_with_a_key_is_refused():
    packets = list(pr.iter_packets(TEST_GPG))
    uid = next(body for tag, body in packets if tag == pr.TAG_USER_ID)
    with pytest.raises(pr.OpenPGPError, match='does not start with a public key packet'):
        pr.public_keys(bytes([0xC0 | pr.TAG_USER_ID, len(uid)]) + uid)
    marker = bytes([0xC0 | pr.TAG_MARKER, 3]) + b'PGP'
    assert pr.public_keys(marker + TEST_GPG)[0]['fingerprint'] == TEST_FPR


# ---------------------------------------------------------------------------------------------
# check_fingerprint


@pytest.mark.parametrize('spelling', [
    lambda f: f,
    lambda f: f.lower(),
    lambda f: ' '.join(f[i:i + 4] for i in range(0, 40, 4)),
    lambda f: '0x' + f,
    lambda f: ':'.join(f[i:i + 2] for i in range(0, 40, 2)),
])
def test_check_fingerprint_normalises_the_expected_value(spelling):
    result = pr.check_fingerprint(TEST_ASC, spelling(TEST_FPR))
    assert result['fingerprint'] == TEST_FPR
    assert result['keyring'] == TEST_GPG
    assert result['subkeys'] == [TEST_SUBKEY_FPR]


def test_check_fingerprint_mismatch_names_both():
    with pytest.raises(pr.FingerprintMismatch) as info:
        pr.check_fingerprint(OTHER_ASC, TEST_FPR, 'https://example/gpgkey')
    message = str(info.value)
    assert TEST_FPR in message and OTHER_FPR in message and 'https://example/gpgkey' in message


def test_check_fingerprint_refuses_a_subkey_pin_and_says_so():
    with pytest.raises(pr.FingerprintMismatch, match='is one of its subkeys; pin the primary key'):
        pr.check_fingerprint(TEST_ASC, TEST_SUBKEY_FPR)


def test_check_fingerprint_refuses_an_extra_primary_key():
    # apt trusts every key in a signed-by keyring: a second key would ride along unpinned.
    with pytest.raises(pr.FingerprintMismatch, match='got 2 primary keys: %s, %s' % (TEST_FPR, OTHER_FPR)):
        pr.check_fingerprint(TEST_ASC + OTHER_ASC, TEST_FPR)


@pytest.mark.parametrize('value', ['7139F7069D403E1A', '9D403E1A', '', None, 'not hex at all', TEST_FPR + 'AB'])
def test_key_ids_and_junk_are_not_fingerprints(value):
    with pytest.raises(pr.PackageRepoError):
        pr.normalize_fingerprint(value)


def test_nvidia_default_is_a_full_fingerprint():
    assert pr.normalize_fingerprint(pr.NVIDIA_KEY_FINGERPRINT) == 'C95B321B61E88C1809C4F759DDCAE044F796ECB0'
    assert pr.NVIDIA_KEY_FINGERPRINT.endswith('DDCAE044F796ECB0')


def test_describe_keyring():
    text = pr.describe_keyring(TEST_GPG)
    assert text.splitlines()[0] == 'fingerprint: %s' % TEST_FPR
    assert '  subkey: %s' % TEST_SUBKEY_FPR in text
    assert pr.describe_keyring(None) == ''
    assert pr.describe_keyring(b'garbage').startswith('unreadable key:')


def test_keyring_bytes_binary_for_apt_armour_for_rpm():
    assert pr.keyring_bytes('apt', TEST_GPG) == TEST_GPG
    for manager in ('dnf', 'yum', 'zypper'):
        assert pr.keyring_bytes(manager, TEST_GPG) == TEST_ASC.encode('ascii')


# ---------------------------------------------------------------------------------------------
# Package managers


def test_detect_package_manager_order():
    def which(found):
        return lambda name: '/usr/bin/%s' % name if name in found else None
    assert pr.detect_package_manager(which({'apt-get', 'dnf'})) == 'apt'
    assert pr.detect_package_manager(which({'zypper', 'dnf'})) == 'zypper'
    assert pr.detect_package_manager(which({'dnf', 'yum'})) == 'dnf'
    assert pr.detect_package_manager(which({'yum'})) == 'yum'
    assert pr.detect_package_manager(which(set())) is None


def test_package_spec():
    assert pr.package_spec('apt', 'libnvidia-container1', '1.17.8-1') == 'libnvidia-container1=1.17.8-1'
    assert pr.package_spec('zypper', 'libnvidia-container1', '1.17.8-1') == 'libnvidia-container1=1.17.8-1'
    assert pr.package_spec('dnf', 'libnvidia-container1', '1.17.8-1') == 'libnvidia-container1-1.17.8-1'
    assert pr.package_spec('yum', 'libnvidia-container1', 'latest') == 'libnvidia-container1'


@pytest.mark.parametrize('installed, wanted, matches', [
    ('1.17.8-1', '1.17.8-1', True),
    ('1.17.8-1', '1.17.8', True),
    ('1.17.8-1', '1.17.7-1', False),
    ('1.17.8-1', '1.17', False),
    ('1:1.17.8-1', '1.17.8-1', True),
    ('1.18.0~rc.1-1', '1.18.0~rc.1-1', True),
    (None, '1.17.8-1', False),
    ('1.17.8-1', 'latest', True),
    (None, 'latest', False),
])
def test_version_matches(installed, wanted, matches):
    assert pr.version_matches(installed, wanted) is matches


def test_install_commands_apt():
    packages = ['nvidia-container-toolkit', 'libnvidia-container1']
    [argv] = pr.install_commands('apt', packages, '1.17.8-1')
    assert argv == ['apt-get', 'install', '-y', '--no-install-recommends',
                    '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold',
                    'nvidia-container-toolkit=1.17.8-1', 'libnvidia-container1=1.17.8-1']
    [argv] = pr.install_commands('apt', packages, '1.17.8-1', allow_downgrade=True)
    assert '--allow-downgrades' in argv
    [argv] = pr.install_commands('apt', packages, 'latest')
    assert argv[-2:] == packages


def test_install_commands_dnf_yum_zypper():
    packages = ['nvidia-container-toolkit', 'libnvidia-container1']
    assert pr.install_commands('dnf', packages, '1.17.8-1', allow_downgrade=True) == [
        ['dnf', 'install', '-y', 'nvidia-container-toolkit-1.17.8-1', 'libnvidia-container1-1.17.8-1']]
    assert pr.install_commands('yum', packages, '1.17.8-1') == [
        ['yum', 'install', '-y', 'nvidia-container-toolkit-1.17.8-1', 'libnvidia-container1-1.17.8-1']]
    assert pr.install_commands('zypper', packages, '1.17.8-1') == [
        ['zypper', '--non-interactive', 'install', 'nvidia-container-toolkit=1.17.8-1', 'libnvidia-container1=1.17.8-1']]
    assert pr.install_commands('zypper', packages, '1.17.8-1', allow_downgrade=True)[0][3] == '--oldpackage'
    # dnf install leaves an installed package alone, so latest upgrades those in a second command.
    assert pr.install_commands('dnf', packages, 'latest', {'nvidia-container-toolkit': '1.17.0-1'}) == [
        ['dnf', 'install', '-y', 'libnvidia-container1'],
        ['dnf', 'upgrade', '-y', 'nvidia-container-toolkit']]


def test_refresh_and_remove_commands():
    assert pr.refresh_commands('apt', '/etc/apt/sources.list.d/n.sources', '/k') == [[
        'apt-get', 'update', '-o', 'Dir::Etc::sourcelist=/etc/apt/sources.list.d/n.sources',
        '-o', 'Dir::Etc::sourceparts=-', '-o', 'APT::Get::List-Cleanup=0']]
    assert pr.refresh_commands('dnf', '/r', '/k') == [
        ['dnf', '-y', 'makecache', '--disablerepo=*', '--enablerepo=nvidia-container-toolkit']]
    assert pr.refresh_commands('zypper', '/r', '/k') == [
        ['rpm', '--import', '/k'], ['zypper', '--non-interactive', 'refresh', 'nvidia-container-toolkit']]
    assert pr.remove_command('apt', ['a', 'b']) == ['apt-get', 'remove', '-y', 'a', 'b']
    assert pr.remove_command('zypper', ['a']) == ['zypper', '--non-interactive', 'remove', 'a']
    assert pr.remove_command('yum', ['a']) == ['yum', 'remove', '-y', 'a']


def test_query_and_parse_dpkg():
    packages = ['nvidia-container-toolkit', 'libnvidia-container1', 'libnvidia-container-tools']
    argv = pr.query_command('apt', packages)
    assert argv[:4] == ['dpkg-query', '-W', '-f', '${Package}\\t${Version}\\t${db:Status-Abbrev}\\n']
    out = ('nvidia-container-toolkit\t1.17.8-1\tii \n'
           'libnvidia-container1\t1.17.7-1\trc \n'  # removed, configuration left: not installed
           'unrelated\t1.0\tii \n')
    assert pr.parse_installed('apt', packages, out) == {
        'nvidia-container-toolkit': '1.17.8-1', 'libnvidia-container1': None, 'libnvidia-container-tools': None}


def test_query_and_parse_rpm():
    packages = ['nvidia-container-toolkit', 'libnvidia-container1']
    assert pr.query_command('dnf', packages)[:3] == ['rpm', '-q', '--qf']
    out = 'nvidia-container-toolkit\t1.17.8-1\npackage libnvidia-container1 is not installed\n'
    assert pr.parse_installed('dnf', packages, out) == {'nvidia-container-toolkit': '1.17.8-1', 'libnvidia-container1': None}


# ---------------------------------------------------------------------------------------------
# Files


def test_write_atomic_creates_directory_and_sets_mode(tmp_path):
    target = tmp_path / 'usr' / 'share' / 'keyrings' / 'k.gpg'
    old = os.umask(0o077)
    try:
        pr.write_atomic(str(target), TEST_GPG, 0o644)
    finally:
        os.umask(old)
    assert target.read_bytes() == TEST_GPG
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(target.parent) == ['k.gpg']
    pr.write_atomic(str(target), b'new')
    assert target.read_bytes() == b'new'


def test_read_and_remove(tmp_path):
    target = tmp_path / 'f'
    assert pr.read_bytes(str(target)) is None
    assert pr.remove_file(str(target)) is False
    target.write_bytes(b'x')
    assert pr.read_bytes(str(target)) == b'x'
    assert pr.remove_file(str(target)) is True
    with pytest.raises(pr.PackageRepoError, match='is a directory'):
        pr.read_bytes(str(tmp_path))
