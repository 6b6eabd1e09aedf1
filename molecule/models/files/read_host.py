"""Harness, not product (molecule/models): what one instance holds, as one JSON line.

Ollama's /api/tags (name -> digest, name -> size) and /api/ps, every file of the model store
(argv[1]) with its size, mtime and sha256, so that "nothing changed on disk" can be checked,
and the double's upstream counters (GET /_double/stats: what crossed the "internet").
Run on the instance by tasks/case.yml through ansible.builtin.script.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import urllib.request

API = 'http://127.0.0.1:11434/'


def api(path):
    with urllib.request.urlopen(API + path, timeout=10) as answer:
        return json.load(answer)


def store_files(root):
    """'<path> <size> <mtime_ns> <sha256>' for every file under root, sorted by path."""
    lines = []
    for top, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(top, name)
            with open(path, 'rb') as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            info = os.stat(path)
            lines.append('%s %d %d %s' % (os.path.relpath(path, root), info.st_size, info.st_mtime_ns, digest))
    return sorted(lines)


def main():
    tags = api('api/tags')['models']
    print(json.dumps({
        'tags': {model['name']: model['digest'] for model in tags},
        'sizes': {model['name']: model['size'] for model in tags},
        'ps': api('api/ps')['models'],
        'stats': api('_double/stats'),
        'store': store_files(sys.argv[1]),
    }))


if __name__ == '__main__':
    main()
