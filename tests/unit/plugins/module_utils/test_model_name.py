# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ollama's name rules: the forms Ollama accepts, how it displays them, and every form it refuses."""

from __future__ import annotations

import pytest

from ansible_collections.ragops.gpu_stack.plugins.module_utils.model_name import InvalidModelName, normalise, parse


@pytest.mark.parametrize('text, full, shortest', [
    ('llama3.2', 'registry.ollama.ai/library/llama3.2:latest', 'llama3.2:latest'),
    ('llama3.2:latest', 'registry.ollama.ai/library/llama3.2:latest', 'llama3.2:latest'),
    ('registry.ollama.ai/library/llama3.2:latest', 'registry.ollama.ai/library/llama3.2:latest', 'llama3.2:latest'),
    ('  llama3.2:1b  ', 'registry.ollama.ai/library/llama3.2:1b', 'llama3.2:1b'),
    ('mattw/pygmalion', 'registry.ollama.ai/mattw/pygmalion:latest', 'mattw/pygmalion:latest'),
    ('hf.co/org/repo:Q4_K_M', 'hf.co/org/repo:Q4_K_M', 'hf.co/org/repo:Q4_K_M'),
    ('registry.example.com:5000/team/model:v1', 'registry.example.com:5000/team/model:v1',
     'registry.example.com:5000/team/model:v1'),
    ('localhost:5000/ns/model', 'localhost:5000/ns/model:latest', 'localhost:5000/ns/model:latest'),
    ('http://localhost:5000/ns/model:tag', 'localhost:5000/ns/model:tag', 'localhost:5000/ns/model:tag'),
    ('_under/score_:t-1.2', 'registry.ollama.ai/_under/score_:t-1.2', '_under/score_:t-1.2'),
])
def test_accepted_forms_and_their_display(text, full, shortest):
    name = parse(text)
    assert (name.full, name.shortest) == (full, shortest)
    assert normalise(text) == shortest


def test_manifest_path_is_where_ollama_keeps_it():
    assert parse('llama3.2').manifest_path == 'manifests/registry.ollama.ai/library/llama3.2/latest'
    assert parse('hf.co/org/repo:Q4_K_M').manifest_path == 'manifests/hf.co/org/repo/Q4_K_M'


def test_scheme_is_kept_apart_from_the_host():
    name = parse('http://localhost:5000/ns/model')
    assert (name.scheme, name.host) == ('http', 'localhost:5000')
    assert parse('llama3.2').scheme == ''


@pytest.mark.parametrize('a, b', [
    ('llama3', 'llama3:latest'),
    ('llama3', 'LLAMA3'),
    ('LLaMA3:Latest', 'registry.ollama.ai/library/llama3:latest'),
    ('HF.CO/Org/Repo:q4_k_m', 'hf.co/org/repo:Q4_K_M'),
])
def test_keys_are_case_insensitive_and_default_aware(a, b):
    assert parse(a).key == parse(b).key
    assert parse(a) == parse(b) and hash(parse(a)) == hash(parse(b))


def test_display_keeps_the_case_given():
    assert parse('LLaMA3').shortest == 'LLaMA3:latest'
    assert parse('llama3').key != parse('llama3:8b').key
    assert parse('a/llama3').key != parse('llama3').key


@pytest.mark.parametrize('text, words', [
    ('', 'model is empty'),
    ('   ', 'model is empty'),
    ('llama3:', 'tag after ":" is empty'),
    ('hf.co/repo', "'.' is not allowed in the namespace 'hf.co'"),
    ('a/b/c/d', 'at most host/namespace/model:tag'),
    ('/llama3', 'namespace is empty'),
    ('ns//model', 'namespace is empty'),
    ('llama3@sha256:' + 'a' * 64, 'pull by tag, not by digest'),
    ('-llama', 'must start with a letter'),
    ('.llama', 'must start with a letter'),
    ('ns/mo del', "' ' is not allowed in the model"),
    ('llama3:t:ag', "':' is not allowed in the model"),
    ('llama3:ta/g', 'namespace'),
    ('llama3:t@g', "'@'"),
    ('llama3:tag!', "'!' is not allowed in the tag"),
    ('ftp://host/ns/model', 'scheme must be http or https'),
    ('http://ns/model', 'a scheme needs host/namespace/model'),
    ('m' * 81, 'model is longer than 80'),
    ('llama3:' + 't' * 81, 'tag is longer than 80'),
    ('n' * 81 + '/model', 'namespace is longer than 80'),
    ('h' * 351 + '/ns/model', 'host is longer than 350'),
    ('lläma', "'ä' is not allowed"),
])
def test_invalid_forms_say_what_is_wrong(text, words):
    with pytest.raises(InvalidModelName, match='invalid model name') as info:
        parse(text)
    assert words in str(info.value)


def test_a_non_string_is_refused():
    with pytest.raises(InvalidModelName, match='a model name is a string'):
        parse(3)


def test_longest_parts_still_accepted():
    assert parse('h' * 350 + '/' + 'n' * 80 + '/' + 'm' * 80 + ':' + 't' * 80).tag == 't' * 80
