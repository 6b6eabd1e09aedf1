# -*- coding: utf-8 -*-
# Copyright (c) 2026, ragops
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ollama's model name rules (types/model/name.go at v0.33): parse, check, normalise, display.

A name is ``[host/][namespace/]model[:tag]`` with the defaults ``registry.ollama.ai``,
``library`` and ``latest``: ``llama3.2``, ``llama3.2:latest`` and
``registry.ollama.ai/library/llama3.2:latest`` are one model. One part is a model, two are
``namespace/model`` (never ``host/model``), three are ``host/namespace/model``; the host may
carry ``:port`` and a ``scheme://`` prefix. Installed models are matched case-insensitively.
Standard library only: the converged fast path runs this on the controller too.
"""

from __future__ import annotations

DEFAULT_HOST = 'registry.ollama.ai'
DEFAULT_NAMESPACE = 'library'
DEFAULT_TAG = 'latest'

# The longest part Ollama accepts: a host (with its port) up to 350 characters, the others 80.
_LIMITS = {'host': 350, 'namespace': 80, 'model': 80, 'tag': 80}


class InvalidModelName(ValueError):
    """A name Ollama would refuse (HTTP 400 ``invalid model name``); the message says why."""


class ModelName:
    """One model name, fully qualified; ``key`` is its case-insensitive identity."""

    __slots__ = ('host', 'namespace', 'model', 'tag', 'scheme')

    def __init__(self, host, namespace, model, tag, scheme=''):
        self.host = host
        self.namespace = namespace
        self.model = model
        self.tag = tag
        self.scheme = scheme

    def __repr__(self):
        return 'ModelName(%r)' % self.full

    def __eq__(self, other):
        return isinstance(other, ModelName) and self.key == other.key

    def __hash__(self):
        return hash(self.key)

    @property
    def key(self):
        return (self.host.lower(), self.namespace.lower(), self.model.lower(), self.tag.lower())

    @property
    def full(self):
        return '%s/%s/%s:%s' % (self.host, self.namespace, self.model, self.tag)

    @property
    def shortest(self):
        """What ``/api/tags`` and ``ollama list`` show: defaults left out, the tag always there."""
        if self.host.lower() != DEFAULT_HOST:
            prefix = '%s/%s/' % (self.host, self.namespace)
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = '%s/' % self.namespace
        else:
            prefix = ''
        return '%s%s:%s' % (prefix, self.model, self.tag)

    @property
    def manifest_path(self):
        """The manifest's path inside an Ollama model store (``$OLLAMA_MODELS``)."""
        return 'manifests/%s/%s/%s/%s' % (self.host, self.namespace, self.model, self.tag)


def _check_part(kind, part, text):
    if not part:
        raise InvalidModelName('invalid model name %r: the %s is empty' % (text, kind))
    if len(part) > _LIMITS[kind]:
        raise InvalidModelName('invalid model name %r: the %s is longer than %d characters' % (text, kind, _LIMITS[kind]))
    first = part[0]
    if not (first.isascii() and (first.isalnum() or first == '_')):
        raise InvalidModelName('invalid model name %r: the %s %r must start with a letter, a digit or "_"' % (text, kind, part))
    for char in part[1:]:
        if char.isascii() and (char.isalnum() or char in '_-'):
            continue
        if char == '.' and kind != 'namespace':
            continue
        if char == ':' and kind == 'host':
            continue
        raise InvalidModelName('invalid model name %r: %r is not allowed in the %s %r' % (text, char, kind, part))


def parse(text):
    """The ModelName for ``text``, or InvalidModelName naming what is wrong.

    ``hf.co/repo`` (two parts with a dotted first one) is refused, as Ollama refuses it: two
    parts are namespace/model, and a namespace has no ``.``.
    """
    if not isinstance(text, str):
        raise InvalidModelName('invalid model name %r: a model name is a string' % (text,))
    name = text.strip()
    scheme = ''
    if '://' in name:
        scheme, name = name.split('://', 1)
        if scheme not in ('http', 'https'):
            raise InvalidModelName('invalid model name %r: the scheme must be http or https' % text)
    tag = DEFAULT_TAG
    slash = name.rfind('/')
    colon = name.rfind(':')
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not tag:
            raise InvalidModelName('invalid model name %r: the tag after ":" is empty' % text)
    if '@' in name:
        raise InvalidModelName('invalid model name %r: pull by tag, not by digest (@sha256:...)' % text)
    parts = name.split('/')
    if len(parts) > 3:
        raise InvalidModelName('invalid model name %r: at most host/namespace/model:tag' % text)
    if scheme and len(parts) != 3:
        raise InvalidModelName('invalid model name %r: a scheme needs host/namespace/model' % text)
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(parts) == 3:
        host, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        model = parts[0]
    _check_part('host', host, text)
    _check_part('namespace', namespace, text)
    _check_part('model', model, text)
    _check_part('tag', tag, text)
    return ModelName(host, namespace, model, tag, scheme)


def normalise(text):
    """The name as Ollama lists it (``llama3.2`` -> ``llama3.2:latest``)."""
    return parse(text).shortest
