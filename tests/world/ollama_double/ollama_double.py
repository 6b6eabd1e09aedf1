"""TEST DOUBLE of the Ollama server and CLI. This is NOT Ollama.

It follows Ollama's documented API and on-disk layout (the facts collected in
OLLAMA-API.md, read from Ollama v0.33's source) so that the collection's roles, modules
and tests can be exercised where the real ``ollama/ollama`` image cannot be had. It runs
no model: completions are canned, embeddings are deterministic hash vectors. Python
standard library only, because it runs in a Debian minbase image that has just python3.

CLI (mirrors the real binary where they overlap)::

    ollama_double.py serve [--host H] [--port P] [--models DIR]
    ollama_double.py list | ls          # NAME ID SIZE MODIFIED, exit 1 when no server
    ollama_double.py ps                 # NAME ID SIZE PROCESSOR CONTEXT UNTIL
    ollama_double.py pull NAME          # status lines, exit 1 on error
    ollama_double.py rm NAME...
    ollama_double.py --version | -v     # "ollama version is 0.33.0", always exit 0

``serve`` binds OLLAMA_HOST (default 127.0.0.1:11434; ``host``, ``host:port``, ``:port``,
``http://host:port``), or --host/--port. It prints the base URL (``http://127.0.0.1:43121``)
as the first line of stdout before serving, so ``--port 0`` is usable. Logs go to stderr
in the real server's style (``server config``, ``Listening on``, ``inference compute``).
Models live in OLLAMA_MODELS (default ~/.ollama/models) or --models, laid out as Ollama
does: ``manifests/<host>/<namespace>/<model>/<tag>`` and ``blobs/sha256-<hex>``.
At start, blobs no manifest references and older than one hour are pruned unless
OLLAMA_NOPRUNE is set. Client commands find the server through OLLAMA_HOST
(0.0.0.0 means 127.0.0.1).

Endpoints: ``GET|HEAD /``, ``/api/version``, ``/api/tags``, ``/api/ps``, ``POST /api/show``,
``DELETE /api/delete``, ``POST /api/copy``, ``POST /api/pull``, ``POST /api/embed``,
``POST /api/embeddings``, ``POST /api/generate``, ``POST /api/chat``.

The upstream registry (what would be registry.ollama.ai) is built in: a catalog of small
synthetic models with deterministic bytes and real sha256 digests: llama3.2:latest,
llama3.2:3b (same content as latest), llama3.2:1b, qwen2.5:0.5b, nomic-embed-text:latest
(embedding, 768), all-minilm:latest (embedding, 384), mxbai-embed-large:latest
(embedding, 1024).

Knobs. Each can be given by environment at start (for containers) and changed at runtime
through ``/_double/`` (a prefix real Ollama never uses; product code must never call it).
Model lists are comma separated names, normalised like Ollama names (``llama3.2`` is
``llama3.2:latest``).

======================================  ========================  ===================================
environment variable                    /_double/faults key       effect
======================================  ========================  ===================================
OLLAMA_DOUBLE_GPU=auto|cpu|cuda|rocm    gpu                       auto (unset): what the container
                                                                  was given decides (below); cuda or
                                                                  rocm: one made-up 24 GiB GPU; cpu.
                                                                  CUDA_VISIBLE_DEVICES=-1 or empty
                                                                  forces cpu. /api/ps size_vram (0
                                                                  on cpu)
OLLAMA_DOUBLE_ROCM_GFX=gfx1030          (start only)              the AMD GPUs' LLVM target (auto)
OLLAMA_DOUBLE_ROCM_VRAM_MIB=16384       (start only)              each AMD GPU's memory (auto)
OLLAMA_DOUBLE_ROOT=/                    (start only)              where auto looks for /dev and
                                                                  /usr/bin/nvidia-smi (tests)
OLLAMA_DOUBLE_UNREACHABLE=1             unreachable (bool)        pulls fail: ``pull model manifest:
                                                                  Get "https://...": dial tcp: lookup
                                                                  registry.ollama.ai: no such host``
OLLAMA_DOUBLE_UNKNOWN=a,b               unknown (list)            upstream answers 404 for these
                                                                  (``file does not exist``)
OLLAMA_DOUBLE_NEWER_VERSION=a,b         newer_version (list)      upstream answers 412 (``requires a
                                                                  newer version of Ollama``)
OLLAMA_DOUBLE_DROP_AFTER_BYTES=N        drop_after_bytes (int)    a pull stops after N blob bytes:
                                                                  partial file stays, the HTTP
                                                                  response is cut (no final chunk)
OLLAMA_DOUBLE_DROP_TIMES=n              drop_times (int)          how many pulls the drop hits
                                                                  (default 1; 0 = every pull)
OLLAMA_DOUBLE_DROP_MODE=cut|error       drop_mode                 ``error`` ends the stream with
                                                                  ``max retries exceeded: ...`` instead
OLLAMA_DOUBLE_RATE=BYTES_PER_SEC        rate (int, 0 = no limit)  throttles blob transfer
OLLAMA_DOUBLE_STALL_AFTER_BYTES=N       stall_after_bytes (int)   the next pull goes silent after N
                                                                  blob bytes for stall_seconds, then
                                                                  goes on (once per setting); a client
                                                                  that left meanwhile does not stop
                                                                  the blob, and a second pull of it
                                                                  waits for that one download
OLLAMA_DOUBLE_STALL_SECONDS=S           stall_seconds (float)     how long the stall lasts (default 10)
OLLAMA_DOUBLE_DISK_FULL_AFTER_BYTES=N   disk_full_after_bytes     the store has room for N more blob
                                        (int, 0 = no limit)       bytes in each pull: the pull ends
                                                                  with ``write <store>/blobs/sha256-
                                                                  <hex>-partial: no space left on
                                                                  device`` (ENOSPC aborts the pull);
                                                                  the partial stays
OLLAMA_DOUBLE_CORRUPT=a,b               corrupt (list)            upstream serves a damaged model
                                                                  layer -> ``digest mismatch``
OLLAMA_DOUBLE_FINAL_PROGRESS=0          final_progress (bool)     fresh layers get no closing
                                                                  completed==total line (as real
                                                                  Ollama may do); default 1
OLLAMA_DOUBLE_LOAD_SECONDS=S            load_seconds (float)      time a model load takes
OLLAMA_DOUBLE_REVISIONS=m=2,n=3         (POST /_double/upstream)  upstream revision per model
OLLAMA_DOUBLE_EXTRA=name=like,...       (POST /_double/upstream)  extra upstream names copying the
                                                                  shape of a catalog model
======================================  ========================  ===================================

Compute (gpu auto), decided once at start as Ollama v0.33 does, from what the container
was given; the result is logged on stderr (what ``docker logs`` shows) before serving:

- NVIDIA when ``/dev/nvidia<N>`` exist: the GPUs are the rows of
  ``/usr/bin/nvidia-smi --query-gpu=index,uuid,name,memory.total,compute_cap,pci.bus_id,mig.mode.current
  --format=csv,noheader,nounits`` whose index N has a node (nvidia-smi in a container lists
  the host's GPUs), with the driver from ``--query-gpu=driver_version --format=csv,noheader``.
  CUDA_VISIBLE_DEVICES selects (indexes into those GPUs or UUID prefixes; -1 or empty: none).
  Floors: compute capability below 5.0 (``msg="CUDA GPU is too old"``), driver below 550, or
  below 570 for compute capability 5.0-6.2 (``msg="NVIDIA driver too old"``) drop a GPU with a
  WARN line. Nodes without a working nvidia-smi: ``msg="failure during GPU discovery"``.
- ROCm when ``/dev/kfd`` and ``/dev/dri/renderD*`` exist: one GPU per render node, target
  OLLAMA_DOUBLE_ROCM_GFX unless HSA_OVERRIDE_GFX_VERSION[_<i>] (10.3.0 = gfx1030) says
  otherwise; a target outside Ollama's list drops the GPU (``msg="amdgpu is not supported
  ..."``). HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES select by index.
- Else, or when every GPU was dropped, the CPU.

One ``msg="inference compute"`` line per GPU kept (``id=<n> filter_id=<token or n>
library=CUDA|ROCm compute=... name=CUDA<n> description=<name> libdirs=ollama,cuda_v12|13
driver=<CUDA version of the driver branch> pci_id=... type=discrete total=... available=...``,
available being total less 512 MiB), or the CPU one (``id=cpu library=cpu``). A loaded model's
size_vram is its size when it fits the GPUs' available memory, that memory when not (a
partial offload), 0 on the CPU.

Control endpoints:

- ``GET /_double/faults``: current knobs. ``POST /_double/faults {key: value}``: merge.
- ``GET /_double/upstream``: catalog names, revisions and manifest digests.
  ``POST /_double/upstream {"model":"llama3.2","revision":2}``: new deterministic bytes
  for the model layer (new digest); ``{"model":"hf.co/org/repo:Q4_K_M","like":"qwen2.5:0.5b"}``
  adds a name upstream.
- ``GET /_double/stats``: ``manifest_requests``, ``blob_requests``, ``bytes_transferred``,
  ``pulls`` in total and per model (``models`` keyed by shortest name).
- ``POST /_double/reset``: zero the counters, clear every fault, revision and extra name
  (also those given by environment), unload all models.

Server settings read like the real server (and logged in ``server config``):
OLLAMA_KEEP_ALIVE (default 5m; Go duration or seconds; negative = forever),
OLLAMA_MAX_LOADED_MODELS (0 = 3), OLLAMA_CONTEXT_LENGTH (0 = by VRAM), OLLAMA_NOPRUNE,
OLLAMA_NUM_PARALLEL, OLLAMA_LOAD_TIMEOUT, OLLAMA_KV_CACHE_TYPE, OLLAMA_FLASH_ATTENTION and
the rest are accepted and logged only.
"""

from __future__ import annotations

import argparse
import array
import datetime
import functools
import hashlib
import http.client
import http.server
import ipaddress
import json
import math
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse

VERSION = "0.33.0"
DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MISSING_PART = "!MISSING!"
FOREVER_NS = 2 ** 63 - 1
MANIFEST_MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_MEDIA_PREFIX = "application/vnd.ollama.image."
PROGRESS_INTERVAL = 0.06
PRUNE_AGE_SECONDS = 3600
META_MARKER = b"OLLAMA-DOUBLE-META"
NEWER_VERSION_BODY = ("\n\nThe model you are attempting to pull requires a newer version of Ollama.\n\n"
                      "Please download the latest version at:\n\n\thttps://ollama.com/download\n\n")

SERVER_ENV_KEYS = (
    "CUDA_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "HIP_VISIBLE_DEVICES",
    "HSA_OVERRIDE_GFX_VERSION", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "OLLAMA_CONTEXT_LENGTH",
    "OLLAMA_DEBUG", "OLLAMA_FLASH_ATTENTION", "OLLAMA_GPU_OVERHEAD", "OLLAMA_HOST", "OLLAMA_IGPU_ENABLE",
    "OLLAMA_KEEP_ALIVE", "OLLAMA_KV_CACHE_TYPE", "OLLAMA_LLM_LIBRARY", "OLLAMA_LOAD_TIMEOUT",
    "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_MAX_QUEUE", "OLLAMA_MAX_TRANSFER_STREAMS", "OLLAMA_MODELS",
    "OLLAMA_NOHISTORY", "OLLAMA_NOPRUNE", "OLLAMA_NO_CLOUD", "OLLAMA_NUM_PARALLEL", "OLLAMA_ORIGINS",
    "OLLAMA_REMOTES", "OLLAMA_SCHED_SPREAD", "OLLAMA_VULKAN", "ROCR_VISIBLE_DEVICES",
)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- Go-compatible helpers

def go_quote(text: str) -> str:
    """Go's %q for the strings that appear in error messages."""
    return json.dumps(text, ensure_ascii=False)


def go_json(obj) -> bytes:
    """Compact JSON escaped as Go's encoding/json does (HTML characters as \\u00XX)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode("utf-8")


def rfc3339(ns: int) -> str:
    """Go's time.Time JSON form (RFC3339 with up to nine fraction digits) in local time."""
    seconds, frac = divmod(ns, 1_000_000_000)
    when = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).astimezone()
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        text += ("." + "%09d" % frac).rstrip("0")
    offset = when.strftime("%z")
    if offset in ("+0000", ""):
        return text + "Z"
    return text + offset[:3] + ":" + offset[3:]


_DURATION_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000,
                   "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def go_parse_duration(text: str) -> int:
    """time.ParseDuration, in nanoseconds."""
    original = text
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return 0
    if not text:
        raise ValueError("time: invalid duration %s" % go_quote(original))
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match:
            if re.match(r"[\d.]+$", text[pos:]):
                raise ValueError("time: missing unit in duration %s" % go_quote(original))
            raise ValueError("time: invalid duration %s" % go_quote(original))
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * int(total)


def go_format_duration(ns: int) -> str:
    """time.Duration.String for the values this double logs."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        return sign + ("%dms" % (ns // 1_000_000) if ns % 1_000_000 == 0 else "%dns" % ns)
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds, frac = divmod(rest, 1_000_000_000)
    sec_text = str(seconds) + (("." + "%09d" % frac).rstrip("0") if frac else "")
    if hours:
        return "%s%dh%dm%ss" % (sign, hours, minutes, sec_text)
    if minutes:
        return "%s%dm%ss" % (sign, minutes, sec_text)
    return "%s%ss" % (sign, sec_text)


def keep_alive_ns(value, default_ns: int) -> int:
    """api.Duration's JSON rules: number = seconds, string = Go duration, negative = forever."""
    if value is None:
        return default_ns
    if isinstance(value, bool):
        raise ApiError(400, "json: cannot unmarshal bool into Go value of type api.Duration")
    if isinstance(value, (int, float)):
        ns = int(value * 1_000_000_000)
    elif isinstance(value, str):
        try:
            ns = go_parse_duration(value)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
    else:
        raise ApiError(400, "Unsupported type: '%s'" % type(value).__name__)
    return FOREVER_NS if ns < 0 else ns


def env_duration_ns(name: str, default_ns: int) -> int:
    """envconfig's durations: Go duration or integer seconds; negative = forever."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default_ns
    try:
        ns = go_parse_duration(text)
    except ValueError:
        try:
            ns = int(text) * 1_000_000_000
        except ValueError:
            return default_ns
    return FOREVER_NS if ns < 0 else ns


def human_bytes(size: int) -> str:
    """format.HumanBytes (decimal units)."""
    for limit, unit in ((1000 ** 4, "TB"), (1000 ** 3, "GB"), (1000 ** 2, "MB"), (1000, "KB")):
        if size >= limit:
            value = size / limit
            if value >= 10 or value == math.trunc(value):
                return "%d %s" % (int(value), unit)
            return "%.1f %s" % (value, unit)
    return "%d B" % size


def human_duration(seconds_f: float) -> str:
    """format.humanDuration."""
    seconds = int(seconds_f)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return "%d seconds" % seconds
    minutes = seconds // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return "%d minutes" % minutes
    hours = int(round(seconds_f / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return "%d hours" % hours
    if hours < 24 * 7 * 2:
        return "%d days" % (hours // 24)
    if hours < 24 * 30 * 2:
        return "%d weeks" % (hours // 24 // 7)
    if hours < 24 * 365 * 2:
        return "%d months" % (hours // 24 // 30)
    return "%d years" % int(seconds_f / 3600 / 24 / 365)


def human_time(when: float, now: float) -> str:
    """format.HumanTime."""
    delta = now - when
    if delta / 3600 / 24 / 365 < -20:
        return "Forever"
    if delta < 0:
        return human_duration(-delta) + " from now"
    return human_duration(delta) + " ago"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch from an RFC3339 time with up to nine fraction digits."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return 0.0
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    base = datetime.datetime.fromisoformat(match.group(1) + zone).timestamp()
    return base + float("0." + (match.group(2) or "0"))


# ---------------------------------------------------------------- names (types/model/name.go)

class Name:
    """A model name: [host/][namespace/]model[:tag], with Ollama's defaults and rules."""

    __slots__ = ("host", "namespace", "model", "tag")

    def __init__(self, host: str, namespace: str, model: str, tag: str) -> None:
        self.host = host
        self.namespace = namespace
        self.model = model
        self.tag = tag

    @classmethod
    def parse(cls, text: str) -> "Name":
        """ParseName: ParseNameBare merged with the defaults."""
        text = text.strip()
        host = namespace = model = tag = ""
        if text.rfind(":") > text.rfind("/"):
            text, tag = _cut_promised(text, ":")
        # a digest suffix is not a name part the double supports; it only must not leak into parts
        if "@" in text:
            text = text[:text.rfind("@")]
        rest, model, promised = _cut_promised_ok(text, "/")
        if not promised:
            model = rest
        else:
            rest2, namespace, promised = _cut_promised_ok(rest, "/")
            if not promised:
                namespace = rest2
            else:
                scheme_host = rest2.split("://", 1)
                host = scheme_host[-1]
        return cls(host or DEFAULT_HOST, namespace or DEFAULT_NAMESPACE, model, tag or DEFAULT_TAG)

    def is_valid(self) -> bool:
        """IsFullyQualified: every part valid."""
        return (_valid_part("host", self.host) and _valid_part("namespace", self.namespace)
                and _valid_part("model", self.model) and _valid_part("tag", self.tag))

    def shortest(self) -> str:
        """DisplayShortest: defaults dropped, model and tag always shown."""
        if self.host.lower() != DEFAULT_HOST:
            prefix = "%s/%s/" % (self.host, self.namespace)
        elif self.namespace.lower() != DEFAULT_NAMESPACE:
            prefix = self.namespace + "/"
        else:
            prefix = ""
        return "%s%s:%s" % (prefix, self.model, self.tag)

    def full(self) -> str:
        return "%s/%s/%s:%s" % (self.host, self.namespace, self.model, self.tag)

    def parts(self) -> tuple:
        return (self.host, self.namespace, self.model, self.tag)

    def key(self) -> tuple:
        """Case-insensitive identity, as lookups of installed models use."""
        return tuple(part.lower() for part in self.parts())


def _cut_promised_ok(text: str, sep: str):
    index = text.rfind(sep)
    if index < 0:
        return text, "", False
    return text[:index] or MISSING_PART, text[index + len(sep):] or MISSING_PART, True


def _cut_promised(text: str, sep: str):
    parts = _cut_promised_ok(text, sep)
    return parts[0], parts[1]


def _valid_part(kind: str, part: str) -> bool:
    limit = 350 if kind == "host" else 80
    if not 1 <= len(part) <= limit:
        return False
    for index, char in enumerate(part):
        alnum = char.isascii() and (char.isalnum() or char == "_")
        if index == 0:
            if not alnum:
                return False
        elif char in "_-":
            continue
        elif char == ".":
            if kind == "namespace":
                return False
        elif char == ":":
            if kind != "host":
                return False
        elif not alnum:
            return False
    return True


def registry_scheme(text: str) -> str:
    """The scheme a name asks for (``http://host/ns/model`` -> http); https otherwise."""
    text = text.strip()
    if "://" in text and text.count("/") >= 4:
        return text.split("://", 1)[0]
    return "https"


# ---------------------------------------------------------------- upstream catalog

LLAMA32_TEMPLATE = """<|start_header_id|>system<|end_header_id|>

Cutting Knowledge Date: December 2023

{{ if .System }}{{ .System }}
{{- end }}
{{- if .Tools }}When you receive a tool call response, use the output to format an answer to the orginal user question.

You are a helpful assistant with tool calling capabilities.
{{- end }}<|eot_id|>
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}<|start_header_id|>user<|end_header_id|>

{{ .Content }}<|eot_id|>{{ if $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- else if eq .Role "assistant" }}<|start_header_id|>assistant<|end_header_id|>
{{ .Content }}{{ if not $last }}<|eot_id|>{{ end }}
{{- end }}
{{- end }}"""

QWEN25_TEMPLATE = """{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>
{{- else if .Messages }}
{{- if or .System .Tools }}<|im_start|>system
{{- if .System }}
{{ .System }}
{{- end }}
{{- if .Tools }}

# Tools
{{- end }}<|im_end|>
{{ end }}
{{- range $i, $_ := .Messages }}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ else }}
{{- if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}{{ if .Prompt }}<|im_start|>user
{{ .Prompt }}<|im_end|>
{{ end }}<|im_start|>assistant
{{ end }}{{ .Response }}{{ if .Response }}<|im_end|>{{ end }}"""

EMBED_TEMPLATE = "{{ .Prompt }}"

LICENSES = {
    "llama": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT (test double stand-in text)\n",
    "qwen2": "Apache License Version 2.0, January 2004 (test double stand-in text)\n",
    "apache": "Apache License Version 2.0, January 2004 (test double stand-in text)\n",
}

# Shapes of the synthetic upstream models. Sizes are small so that tests stay fast.
CATALOG_SPECS = {
    "llama3.2:latest": {
        "family": "llama", "parameter_size": "3.2B", "quantization": "Q4_K_M", "bytes": 1_500_000,
        "context_length": 131072, "embedding_length": 3072, "block_count": 28, "head_count": 24,
        "parameter_count": 3212749888, "template": LLAMA32_TEMPLATE, "license": "llama",
        "params": {"stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
    },
    "llama3.2:1b": {
        "family": "llama", "parameter_size": "1.2B", "quantization": "Q8_0", "bytes": 1_000_000,
        "context_length": 131072, "embedding_length": 2048, "block_count": 16, "head_count": 32,
        "parameter_count": 1235814432, "template": LLAMA32_TEMPLATE, "license": "llama",
        "params": {"stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
    },
    "qwen2.5:0.5b": {
        "family": "qwen2", "parameter_size": "494.03M", "quantization": "Q4_K_M", "bytes": 600_000,
        "context_length": 32768, "embedding_length": 896, "block_count": 24, "head_count": 14,
        "parameter_count": 494032768, "template": QWEN25_TEMPLATE, "license": "qwen2",
        "params": {"stop": ["<|im_start|>", "<|im_end|>"]},
    },
    "nomic-embed-text:latest": {
        "family": "nomic-bert", "parameter_size": "137M", "quantization": "F16", "bytes": 400_000,
        "context_length": 2048, "embedding_length": 768, "block_count": 12, "head_count": 12,
        "parameter_count": 136727040, "template": None, "license": "apache", "pooling": 1,
        "params": {"num_ctx": 8192},
    },
    "all-minilm:latest": {
        "family": "bert", "parameter_size": "23M", "quantization": "F16", "bytes": 300_000,
        "context_length": 512, "embedding_length": 384, "block_count": 6, "head_count": 12,
        "parameter_count": 22565376, "template": EMBED_TEMPLATE, "license": "apache", "pooling": 1,
        "params": None,
    },
    "mxbai-embed-large:latest": {
        "family": "bert", "parameter_size": "334M", "quantization": "F16", "bytes": 700_000,
        "context_length": 512, "embedding_length": 1024, "block_count": 24, "head_count": 16,
        "parameter_count": 334090240, "template": EMBED_TEMPLATE, "license": "apache", "pooling": 2,
        "params": {"num_ctx": 512},
    },
}
CATALOG_ALIASES = {"llama3.2:3b": "llama3.2:latest"}


def _text_blob(text: str) -> bytes:
    return text.encode("utf-8")


def _model_info(spec: dict) -> dict:
    arch = spec["family"]
    info = {
        "general.architecture": arch,
        "general.file_type": {"Q4_K_M": 15, "Q8_0": 7, "F16": 1}.get(spec["quantization"], 15),
        "general.parameter_count": spec["parameter_count"],
        "general.quantization_version": 2,
        arch + ".block_count": spec["block_count"],
        arch + ".context_length": spec["context_length"],
        arch + ".embedding_length": spec["embedding_length"],
        arch + ".attention.head_count": spec["head_count"],
        "tokenizer.ggml.model": "gpt2" if spec.get("pooling") is None else "bert",
    }
    if spec.get("pooling") is not None:
        info[arch + ".pooling_type"] = spec["pooling"]
    return info


@functools.lru_cache(maxsize=64)
def build_upstream_model(shape: str, seed_name: str, revision: int):
    """(manifest bytes, {digest: blob bytes}) of one synthetic upstream model."""
    spec = CATALOG_SPECS[shape]
    meta = json.dumps(_model_info(spec), sort_keys=True).encode("utf-8")
    # a GGUF-looking start, then the metadata this double reads back for /api/show
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + META_MARKER + struct.pack("<I", len(meta)) + meta
    filler = hashlib.shake_256(("%s|model|r%d" % (seed_name, revision)).encode("utf-8"))
    layers = [("model", header + filler.digest(spec["bytes"] - len(header)))]
    if spec["template"] is not None:
        layers.append(("template", _text_blob(spec["template"])))
    layers.append(("license", _text_blob(LICENSES[spec["license"]])))
    if spec["params"] is not None:
        layers.append(("params", go_json(spec["params"])))
    blobs = {}
    layer_docs = []
    for kind, data in layers:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        layer_docs.append({"mediaType": LAYER_MEDIA_PREFIX + kind, "digest": digest, "size": len(data)})
    config = {
        "model_format": "gguf", "model_family": spec["family"], "model_families": [spec["family"]],
        "model_type": spec["parameter_size"], "file_type": spec["quantization"],
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [doc["digest"] for doc in layer_docs]},
    }
    config_bytes = go_json(config)
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    blobs[config_digest] = config_bytes
    manifest = {
        "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": len(config_bytes)},
        "layers": layer_docs,
    }
    return go_json(manifest), blobs


# ---------------------------------------------------------------- knobs and counters

def _env_list(name: str) -> list:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on", "t", "y")


def _env_number(name: str, default, kind=int):
    try:
        return kind(os.environ.get(name, "").strip())
    except ValueError:
        return default


def _env_pairs(name: str) -> dict:
    pairs = {}
    for item in _env_list(name):
        key, value = item.partition("=")[::2]
        pairs[key.strip()] = value.strip()
    return pairs


def canonical(text: str) -> str:
    """Shortest display form of a name, for knob lists and counters."""
    return Name.parse(text).shortest()


DEFAULT_FAULTS = {
    "gpu": "auto", "unreachable": False, "unknown": [], "newer_version": [], "drop_after_bytes": 0,
    "drop_times": 1, "drop_mode": "cut", "rate": 0, "corrupt": [], "final_progress": True, "load_seconds": 0.0,
    "disk_full_after_bytes": 0, "stall_after_bytes": 0, "stall_seconds": 10.0,
}
LIST_KNOBS = ("unknown", "newer_version", "corrupt")


def faults_from_env() -> dict:
    faults = dict(DEFAULT_FAULTS)
    faults["gpu"] = os.environ.get("OLLAMA_DOUBLE_GPU", "auto").strip().lower() or "auto"
    faults["unreachable"] = _env_flag("OLLAMA_DOUBLE_UNREACHABLE", False)
    faults["unknown"] = [canonical(n) for n in _env_list("OLLAMA_DOUBLE_UNKNOWN")]
    faults["newer_version"] = [canonical(n) for n in _env_list("OLLAMA_DOUBLE_NEWER_VERSION")]
    faults["corrupt"] = [canonical(n) for n in _env_list("OLLAMA_DOUBLE_CORRUPT")]
    faults["drop_after_bytes"] = _env_number("OLLAMA_DOUBLE_DROP_AFTER_BYTES", 0)
    faults["drop_times"] = _env_number("OLLAMA_DOUBLE_DROP_TIMES", 1)
    faults["drop_mode"] = os.environ.get("OLLAMA_DOUBLE_DROP_MODE", "cut").strip() or "cut"
    faults["rate"] = _env_number("OLLAMA_DOUBLE_RATE", 0)
    faults["final_progress"] = _env_flag("OLLAMA_DOUBLE_FINAL_PROGRESS", True)
    faults["load_seconds"] = _env_number("OLLAMA_DOUBLE_LOAD_SECONDS", 0.0, float)
    faults["disk_full_after_bytes"] = _env_number("OLLAMA_DOUBLE_DISK_FULL_AFTER_BYTES", 0)
    faults["stall_after_bytes"] = _env_number("OLLAMA_DOUBLE_STALL_AFTER_BYTES", 0)
    faults["stall_seconds"] = _env_number("OLLAMA_DOUBLE_STALL_SECONDS", 10.0, float)
    return faults


class Upstream:
    """The stand-in for registry.ollama.ai: catalog, revisions, faults and counters."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.faults = faults_from_env()
        self.revisions = {canonical(k): int(v) for k, v in _env_pairs("OLLAMA_DOUBLE_REVISIONS").items() if v.isdigit()}
        self.extra = {canonical(k): canonical(v) for k, v in _env_pairs("OLLAMA_DOUBLE_EXTRA").items()}
        self.drops_done = 0
        self.stall_done = False
        self.stats = self._zero_stats()

    @staticmethod
    def _zero_stats() -> dict:
        return {"manifest_requests": 0, "blob_requests": 0, "bytes_transferred": 0, "pulls": 0, "models": {}}

    def reset(self) -> None:
        with self.lock:
            self.faults = dict(DEFAULT_FAULTS)
            self.revisions = {}
            self.extra = {}
            self.drops_done = 0
            self.stall_done = False
            self.stats = self._zero_stats()

    def count(self, model: str, field: str, amount: int = 1) -> None:
        with self.lock:
            self.stats[field] += amount
            per_model = self.stats["models"].setdefault(
                model, {"manifest_requests": 0, "blob_requests": 0, "bytes_transferred": 0, "pulls": 0})
            per_model[field] += amount

    def set_faults(self, changes: dict) -> dict:
        with self.lock:
            for key, value in changes.items():
                if key not in DEFAULT_FAULTS:
                    raise ApiError(400, "unknown knob %s" % go_quote(key))
                if key in LIST_KNOBS:
                    if isinstance(value, str):
                        value = [value]
                    value = [canonical(item) for item in value]
                elif isinstance(DEFAULT_FAULTS[key], bool):
                    value = bool(value)
                elif isinstance(DEFAULT_FAULTS[key], (int, float)):
                    value = type(DEFAULT_FAULTS[key])(value)
                else:
                    value = str(value).lower()
                self.faults[key] = value
                if key in ("drop_after_bytes", "drop_times"):
                    self.drops_done = 0
                if key == "stall_after_bytes":
                    self.stall_done = False
            return dict(self.faults)

    def fault(self, key: str):
        with self.lock:
            return self.faults[key]

    def shape_of(self, short: str):
        """(shape, seed name) of an upstream name, or None when the registry lacks it."""
        if short in CATALOG_SPECS:
            return short, short
        if short in CATALOG_ALIASES:
            return CATALOG_ALIASES[short], CATALOG_ALIASES[short]
        if short in self.extra:
            return self.shape_of(self.extra[short])[0], short
        return None

    def model(self, short: str):
        found = self.shape_of(short)
        if found is None:
            return None
        shape, seed = found
        return build_upstream_model(shape, seed, self.revisions.get(short, 1))

    def add(self, body: dict) -> dict:
        name = body.get("model") or body.get("name") or ""
        parsed = Name.parse(name)
        if not parsed.is_valid():
            raise ApiError(400, "invalid model name")
        short = parsed.shortest()
        if body.get("like"):
            like = canonical(body["like"])
            if self.shape_of(like) is None:
                raise ApiError(404, "upstream has no model %s" % go_quote(like))
            with self.lock:
                self.extra[short] = like
        if self.shape_of(short) is None:
            raise ApiError(404, "upstream has no model %s" % go_quote(short))
        if "revision" in body:
            with self.lock:
                self.revisions[short] = int(body["revision"])
        return self.describe()

    def describe(self) -> dict:
        names = sorted(set(CATALOG_SPECS) | set(CATALOG_ALIASES) | set(self.extra))
        models = []
        for short in names:
            manifest_bytes = self.model(short)[0]
            models.append({"model": short, "revision": self.revisions.get(short, 1),
                           "digest": hashlib.sha256(manifest_bytes).hexdigest(), "size": len(manifest_bytes)})
        return {"models": models}

    def take_drop(self):
        """Bytes after which this pull is cut, or 0; consumes one of drop_times."""
        with self.lock:
            limit = self.faults["drop_after_bytes"]
            times = self.faults["drop_times"]
            if limit <= 0 or 0 < times <= self.drops_done:
                return 0
            self.drops_done += 1
            return limit

    def take_stall(self):
        """(bytes after which this pull goes silent, seconds), or (0, 0); the stall fires once per setting."""
        with self.lock:
            limit = self.faults["stall_after_bytes"]
            if limit <= 0 or self.stall_done:
                return 0, 0.0
            self.stall_done = True
            return limit, self.faults["stall_seconds"]


# ---------------------------------------------------------------- the model store on disk

class Store:
    """$OLLAMA_MODELS: manifests/<host>/<namespace>/<model>/<tag> and blobs/sha256-<hex>."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.manifests_dir = os.path.join(root, "manifests")
        self.blobs_dir = os.path.join(root, "blobs")
        self.lock = threading.RLock()
        os.makedirs(self.blobs_dir, exist_ok=True)
        os.makedirs(self.manifests_dir, exist_ok=True)

    def manifest_path(self, name: Name) -> str:
        return os.path.join(self.manifests_dir, *name.parts())

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.blobs_dir, digest.replace(":", "-"))

    def manifests(self) -> list:
        """[(Name, path)] of every manifest file whose path parses as a valid name."""
        found = []
        try:
            hosts = sorted(os.listdir(self.manifests_dir))
        except OSError:
            return found
        for host in hosts:
            for namespace in _listdir(os.path.join(self.manifests_dir, host)):
                for model in _listdir(os.path.join(self.manifests_dir, host, namespace)):
                    model_dir = os.path.join(self.manifests_dir, host, namespace, model)
                    for tag in _listdir(model_dir):
                        path = os.path.join(model_dir, tag)
                        name = Name(host, namespace, model, tag)
                        if os.path.isfile(path) and name.is_valid():
                            found.append((name, path))
        return found

    def existing(self, name: Name) -> Name:
        """getExistingName: an installed model that matches case-insensitively, else name."""
        if os.path.isfile(self.manifest_path(name)):
            return name
        for installed, _path in self.manifests():
            if installed.key() == name.key():
                return installed
        return name

    def read_manifest(self, name: Name):
        """(manifest dict, raw bytes, mtime ns) or None when absent/unreadable."""
        path = self.manifest_path(name)
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
            mtime_ns = os.stat(path).st_mtime_ns
            manifest = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict):
            return None
        return manifest, raw, mtime_ns

    def read_config(self, manifest: dict):
        digest = (manifest.get("config") or {}).get("digest", "")
        if not digest:
            return {}
        try:
            with open(self.blob_path(digest), "rb") as handle:
                config = json.loads(handle.read().decode("utf-8"))
        except (OSError, ValueError):
            return None
        return config if isinstance(config, dict) else None

    def read_layer_text(self, manifest: dict, kind: str) -> str | None:
        for layer in manifest.get("layers") or []:
            if layer.get("mediaType") == LAYER_MEDIA_PREFIX + kind:
                try:
                    with open(self.blob_path(layer["digest"]), "r", encoding="utf-8") as handle:
                        return handle.read()
                except (OSError, KeyError, UnicodeDecodeError):
                    return None
        return None

    def model_layer_meta(self, manifest: dict) -> dict:
        """model_info the double stored in its model blobs; {} for foreign blobs."""
        for layer in manifest.get("layers") or []:
            if layer.get("mediaType") == LAYER_MEDIA_PREFIX + "model":
                try:
                    with open(self.blob_path(layer["digest"]), "rb") as handle:
                        head = handle.read(65536)
                except (OSError, KeyError):
                    return {}
                start = head.find(META_MARKER)
                if start < 0:
                    return {}
                start += len(META_MARKER)
                (length,) = struct.unpack("<I", head[start:start + 4])
                try:
                    meta = json.loads(head[start + 4:start + 4 + length].decode("utf-8"))
                except ValueError:
                    return {}
                return meta if isinstance(meta, dict) else {}
        return {}

    def referenced_digests(self, skip: str | None = None) -> set:
        refs = set()
        for _name, path in self.manifests():
            if path == skip:
                continue
            try:
                with open(path, "rb") as handle:
                    manifest = json.loads(handle.read().decode("utf-8"))
                refs.update(layer_digests(manifest))
            except (OSError, ValueError, AttributeError, TypeError):
                continue
        return refs

    def delete_unused(self, candidates) -> None:
        """deleteUnusedLayers: remove the candidate blobs no manifest references."""
        in_use = self.referenced_digests()
        for digest in candidates:
            if digest not in in_use:
                try:
                    os.remove(self.blob_path(digest))
                except OSError:
                    pass

    def remove_manifest(self, name: Name) -> None:
        path = self.manifest_path(name)
        os.remove(path)
        # PruneDirectory: drop the now empty model/namespace/host directories
        directory = os.path.dirname(path)
        while directory != self.manifests_dir and directory.startswith(self.manifests_dir):
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)

    def prune_at_start(self, log) -> None:
        """Unreferenced blobs (partials included) older than an hour go, as in Ollama >= 0.21."""
        names = {"sha256-" + d.split(":", 1)[-1] for d in self.referenced_digests()}
        cutoff = time.time() - PRUNE_AGE_SECONDS
        removed = 0
        for entry in _listdir(self.blobs_dir):
            path = os.path.join(self.blobs_dir, entry)
            if entry in names or not os.path.isfile(path):
                continue
            try:
                if os.stat(path).st_mtime < cutoff:
                    os.remove(path)
                    removed += 1
            except OSError:
                continue
        log("INFO", "images.go:1124", "total unused blobs removed: %d" % removed)


def _listdir(path: str) -> list:
    try:
        return sorted(entry for entry in os.listdir(path) if not entry.startswith("."))
    except OSError:
        return []


def layer_digests(manifest: dict) -> list:
    digests = [layer["digest"] for layer in manifest.get("layers") or [] if layer.get("digest")]
    config_digest = (manifest.get("config") or {}).get("digest")
    if config_digest:
        digests.append(config_digest)
    return digests


def manifest_size(manifest: dict) -> int:
    size = sum(int(layer.get("size", 0)) for layer in manifest.get("layers") or [])
    return size + int((manifest.get("config") or {}).get("size", 0))


# ---------------------------------------------------------------- the server state

class LoadedModel:
    """An entry of the scheduler's loaded list, as /api/ps shows it."""

    def __init__(self, short: str, digest: str, size: int, vram: int, details: dict, context_length: int) -> None:
        self.short = short
        self.digest = digest
        self.size = size
        self.vram = vram
        self.details = details
        self.context_length = context_length
        self.expires_ns = 0


class ModelView:
    """Everything the endpoints need to know about one installed model."""

    def __init__(self, store: Store, name: Name) -> None:
        found = store.read_manifest(name)
        if found is None:
            raise FileNotFoundError(name.full())
        self.name = name
        self.manifest, raw, self.mtime_ns = found
        self.digest = hashlib.sha256(raw).hexdigest()
        config = store.read_config(self.manifest)
        if config is None:
            raise FileNotFoundError(name.full())
        self.config = config
        self.size = manifest_size(self.manifest)
        self.meta = store.model_layer_meta(self.manifest)
        self.template = store.read_layer_text(self.manifest, "template")
        self.system = store.read_layer_text(self.manifest, "system")
        self.license = store.read_layer_text(self.manifest, "license")
        params_text = store.read_layer_text(self.manifest, "params")
        try:
            self.params = json.loads(params_text) if params_text else {}
        except ValueError:
            self.params = {}
        self.family = config.get("model_family", "") or self.meta.get("general.architecture", "")
        arch = self.meta.get("general.architecture", self.family)
        self.context_length = int(self.meta.get(arch + ".context_length", 0) or 0)
        self.embedding_length = int(self.meta.get(arch + ".embedding_length", 0) or 0) or 768
        self.is_embedding = arch + ".pooling_type" in self.meta

    def details(self, with_lengths: bool = False) -> dict:
        details = {
            "parent_model": "", "format": self.config.get("model_format", ""),
            "family": self.config.get("model_family", ""), "families": self.config.get("model_families"),
            "parameter_size": self.config.get("model_type", ""), "quantization_level": self.config.get("file_type", ""),
        }
        if with_lengths:
            if self.context_length:
                details["context_length"] = self.context_length
            if self.meta:
                details["embedding_length"] = self.embedding_length
        return details

    def capabilities(self) -> list:
        caps = ["embedding"] if self.is_embedding else ["completion"]
        template = self.template or ""
        if not self.is_embedding and ".Tools" in template:
            caps.append("tools")
        if not self.is_embedding and ".Suffix" in template:
            caps.append("insert")
        return caps


class Double:
    """Server state shared by the request handlers."""

    def __init__(self, models_dir: str, bind_host: str, loopback: bool, log) -> None:
        self.store = Store(models_dir)
        self.upstream = Upstream()
        self.loopback = loopback
        self.bind_host = bind_host
        self.log = log
        self.loaded = {}
        self.loaded_lock = threading.Lock()
        self.download_locks = {}
        self.download_locks_lock = threading.Lock()
        self.keep_alive_ns = env_duration_ns("OLLAMA_KEEP_ALIVE", 5 * 60 * 1_000_000_000)
        self.max_loaded = _env_number("OLLAMA_MAX_LOADED_MODELS", 0) or 3
        self.context_length_env = _env_number("OLLAMA_CONTEXT_LENGTH", 0)
        self.noprune = bool(os.environ.get("OLLAMA_NOPRUNE", ""))
        # Ollama discovers its GPUs once, at start.
        self.discovered = discover_compute()

    # -- GPU -------------------------------------------------------------
    def compute(self) -> Compute:
        """What the server runs on: OLLAMA_DOUBLE_GPU (the gpu knob) forces it; auto is what startup found."""
        forced = self.upstream.fault("gpu")
        if forced not in ("cuda", "rocm", "cpu"):
            return self.discovered
        if forced == "cpu" or os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("-1", ""):
            return Compute("cpu")
        return FORCED_COMPUTE[forced]

    def gpu(self) -> str:
        return self.compute().gpu

    def default_context(self) -> int:
        if self.context_length_env > 0:
            return self.context_length_env
        # by VRAM: the fake GPUs have 24 GiB, which Ollama maps to 32k; CPU gets 4k
        return 32768 if self.gpu() != "cpu" else 4096

    # -- names -----------------------------------------------------------
    def view(self, text: str) -> ModelView:
        name = Name.parse(text)
        if not name.is_valid():
            raise FileNotFoundError(text)
        return ModelView(self.store, self.store.existing(name))

    # -- scheduler -------------------------------------------------------
    def expire(self) -> None:
        now = time.time_ns()
        with self.loaded_lock:
            for key in [k for k, v in self.loaded.items() if v.expires_ns <= now]:
                del self.loaded[key]

    def load(self, view: ModelView, keep_alive, options) -> LoadedModel:
        duration = keep_alive_ns(keep_alive, self.keep_alive_ns)
        delay = float(self.upstream.fault("load_seconds") or 0)
        if delay > 0:
            time.sleep(delay)
        self.expire()
        num_ctx = self.default_context()
        if isinstance(options, dict) and isinstance(options.get("num_ctx"), int) and options["num_ctx"] > 0:
            num_ctx = options["num_ctx"]
        if view.context_length:
            num_ctx = min(num_ctx, view.context_length)
        short = view.name.shortest()
        compute = self.compute()
        # all layers on the GPUs when the model fits their free memory, else part of it (partial offload)
        vram = min(view.size, compute.available_bytes()) if compute.gpu != "cpu" else 0
        entry = LoadedModel(short, view.digest, view.size, vram, view.details(), num_ctx)
        now = time.time_ns()
        entry.expires_ns = now + duration
        with self.loaded_lock:
            if short not in self.loaded and len(self.loaded) >= self.max_loaded:
                oldest = min(self.loaded.values(), key=lambda item: item.expires_ns)
                del self.loaded[oldest.short]
            if duration == 0:
                self.loaded.pop(short, None)
            else:
                self.loaded[short] = entry
        return entry

    def unload(self, view: ModelView) -> None:
        with self.loaded_lock:
            self.loaded.pop(view.name.shortest(), None)

    def download_lock(self, digest: str) -> threading.Lock:
        with self.download_locks_lock:
            return self.download_locks.setdefault(digest, threading.Lock())


# ---------------------------------------------------------------- embeddings and completions

@functools.lru_cache(maxsize=8192)
def token_vector(family: str, token: str, dim: int) -> tuple:
    raw = array.array("H")
    raw.frombytes(hashlib.shake_256(("%s|%s" % (family, token)).encode("utf-8")).digest(2 * dim))
    if sys.byteorder != "little":
        raw.byteswap()
    return tuple(value / 32767.5 - 1.0 for value in raw)


def tokenize(text: str) -> list:
    return re.findall(r"\w+", text.lower())


def raw_embedding(family: str, text: str, dim: int) -> list:
    """Bag of hashed words plus a BOS vector: deterministic, and texts sharing words are similar."""
    vector = list(token_vector(family, "<bos>", dim))
    for token in tokenize(text):
        for index, value in enumerate(token_vector(family, token, dim)):
            vector[index] += value
    return vector


def normalise(vector: list) -> list:
    norm = math.sqrt(sum(value * value for value in vector))
    return [value / norm for value in vector] if norm else vector


def fake_completion(short: str, prompt: str) -> str:
    tag = hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]
    return "This is a canned answer from the Ollama test double (%s, prompt %s)." % (short, tag)


# ---------------------------------------------------------------- HTTP

class Handler(http.server.BaseHTTPRequestHandler):
    """Routes Ollama's API and the /_double/ control endpoints."""

    protocol_version = "HTTP/1.1"
    server_version = "ollama-double/" + VERSION
    double: Double = None  # set on the subclass made by make_server
    _status = 0  # for the access log; every answer sets it

    # -- plumbing --------------------------------------------------------
    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        """The access log is written by _access_log in gin's format instead."""

    def _access_log(self, status: int, started: float) -> None:
        elapsed = time.monotonic() - started
        stamp = time.strftime("%Y/%m/%d - %H:%M:%S")
        sys.stderr.write('[GIN] %s | %3d | %12s | %15s | %-7s "%s"\n' % (
            stamp, status, "%.6fms" % (elapsed * 1000), self.client_address[0], self.command, self.path))
        sys.stderr.flush()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _json_body(self, go_type: str) -> dict:
        raw = self._read_body()
        if not raw.strip():
            raise ApiError(400, "missing request body")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid character looking for beginning of value") from None
        if body is None:
            return {}
        if not isinstance(body, dict):
            kind = "array" if isinstance(body, list) else type(body).__name__
            raise ApiError(400, "json: cannot unmarshal %s into Go value of type %s" % (kind, go_type))
        return body

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _json(self, status: int, obj) -> None:
        self._send(status, go_json(obj), "application/json; charset=utf-8")

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status = 200

    def _chunk(self, obj) -> None:
        data = go_json(obj) + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _cut(self) -> None:
        """Drop the connection mid-body, as a dying network would (no terminating chunk)."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _host_allowed(self) -> bool:
        """allowedHostsMiddleware: only when bound to loopback, non-local Host headers get 403."""
        if not self.double.loopback:
            return True
        host = split_host_port(self.headers.get("Host", ""))[0].lower()
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            addr = None
        if addr is not None:
            return addr.is_loopback or addr.is_private or addr.is_unspecified or host in local_ips()
        if host in ("", "localhost") or host == socket.gethostname().lower():
            return True
        return any(host.endswith("." + tld) for tld in ("localhost", "local", "internal"))

    def _dispatch(self) -> None:
        started = time.monotonic()
        self._status = 0
        path = urllib.parse.urlsplit(self.path).path
        try:
            if not self._host_allowed():
                self._send(403, b"", "")
            else:
                route = ROUTES.get((self.command, path))
                if route is None and self.command == "HEAD":
                    route = ROUTES.get(("GET", path)) if path in HEAD_ROUTES else None
                if route is None:
                    self._send(404, b"404 page not found", "text/plain")
                else:
                    getattr(self, route)()
        except ApiError as exc:
            self._json(exc.status, {"error": exc.message})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self._access_log(self._status or 200, started)

    do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = _dispatch

    # -- simple endpoints ------------------------------------------------
    def h_root(self) -> None:
        self._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def h_version(self) -> None:
        self._json(200, {"version": VERSION})

    def h_tags(self) -> None:
        models = []
        for name, _path in self.double.store.manifests():
            try:
                view = ModelView(self.double.store, name)
            except FileNotFoundError:
                continue
            models.append({
                "name": name.shortest(), "model": name.shortest(), "modified_at": rfc3339(view.mtime_ns),
                "size": view.size, "digest": view.digest, "details": view.details(with_lengths=True),
                "capabilities": view.capabilities(), "_sort": view.mtime_ns // 1_000_000_000,
            })
        models.sort(key=lambda item: -item["_sort"])
        for item in models:
            del item["_sort"]
        self._json(200, {"models": models})

    def h_ps(self) -> None:
        self.double.expire()
        with self.double.loaded_lock:
            entries = sorted(self.double.loaded.values(), key=lambda item: -(item.expires_ns // 1_000_000_000))
        models = [{
            "name": e.short, "model": e.short, "size": e.size, "digest": e.digest, "details": e.details,
            "expires_at": rfc3339(e.expires_ns), "size_vram": e.vram, "context_length": e.context_length,
        } for e in entries]
        self._json(200, {"models": models})

    # -- model management ------------------------------------------------
    def h_show(self) -> None:
        body = self._json_body("api.ShowRequest")
        given = _string_field(body, "model", "api.ShowRequest") or _string_field(body, "name", "api.ShowRequest")
        if not given:
            raise ApiError(400, "model is required")
        name = Name.parse(given)
        if not name.is_valid():
            raise ApiError(400, "invalid model name")
        try:
            view = ModelView(self.double.store, self.double.store.existing(name))
        except FileNotFoundError:
            raise ApiError(404, "model '%s' not found" % name.shortest()) from None
        self._json(200, show_body(self.double.store, view))

    def h_delete(self) -> None:
        body = self._json_body("api.DeleteRequest")
        given = _string_field(body, "model", "api.DeleteRequest") or _string_field(body, "name", "api.DeleteRequest")
        if not given.strip():
            raise ApiError(400, "model is required")
        name = Name.parse(given)
        if not name.is_valid():
            raise ApiError(400, "name %s is invalid" % go_quote(given))
        store = self.double.store
        with store.lock:
            name = store.existing(name)
            found = store.read_manifest(name)
            if found is None:
                raise ApiError(404, "model '%s' not found" % given)
            store.remove_manifest(name)
            store.delete_unused(layer_digests(found[0]))
        self._send(200, b"", "")

    def h_copy(self) -> None:
        body = self._json_body("api.CopyRequest")
        source = _string_field(body, "source", "api.CopyRequest")
        destination = _string_field(body, "destination", "api.CopyRequest")
        src = Name.parse(source)
        if not src.is_valid():
            raise ApiError(400, "source %s is invalid" % go_quote(source))
        dst = Name.parse(destination)
        if not dst.is_valid():
            raise ApiError(400, "destination %s is invalid" % go_quote(destination))
        store = self.double.store
        with store.lock:
            src = store.existing(src)
            dst = store.existing(dst)
            try:
                with open(store.manifest_path(src), "rb") as handle:
                    raw = handle.read()
            except OSError:
                raise ApiError(404, "model %s not found" % go_quote(source)) from None
            target = store.manifest_path(dst)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as handle:
                handle.write(raw)
        self._send(200, b"", "")

    # -- pull ------------------------------------------------------------
    def h_pull(self) -> None:
        body = self._json_body("api.PullRequest")
        given = _string_field(body, "model", "api.PullRequest") or _string_field(body, "name", "api.PullRequest")
        name = Name.parse(given)
        if not name.is_valid():
            raise ApiError(400, "invalid model name")
        name = self.double.store.existing(name)
        stream = body.get("stream") is not False
        if registry_scheme(given) == "http" and not body.get("insecure"):
            raise ApiError(500, "insecure protocol http")
        puller = Pull(self.double, name, self._chunk if stream else None)
        if stream:
            self._start_stream()
        try:
            puller.run()
        except PullCut:
            self._cut()
            return
        except ApiError as exc:
            if not stream:
                raise
            puller.emit({"error": exc.message})
        if stream:
            if puller.client_gone:
                self.close_connection = True
                return
            self._end_stream()
        else:
            self._json(200, puller.last)

    # -- inference -------------------------------------------------------
    def _runnable(self, given: str, not_found: str) -> ModelView:
        if not given:
            raise ApiError(400, "model is required")
        try:
            return self.double.view(given)
        except FileNotFoundError:
            raise ApiError(404, not_found) from None

    def h_embed(self) -> None:
        body = self._json_body("api.EmbedRequest")
        given = _string_field(body, "model", "api.EmbedRequest")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            inputs = [raw_input] if raw_input else []
        elif isinstance(raw_input, list):
            if not all(isinstance(item, str) for item in raw_input):
                raise ApiError(400, "invalid input type")
            inputs = list(raw_input)
        elif raw_input is None:
            inputs = []
        else:
            raise ApiError(400, "invalid input type")
        view = self._runnable(given, "model %s not found, try pulling it first" % go_quote(given))
        started = time.monotonic_ns()
        self.double.load(view, body.get("keep_alive"), body.get("options"))
        loaded = time.monotonic_ns()
        if not inputs:
            self._json(200, {"model": given, "embeddings": []})
            return
        dim = view.embedding_length
        dimensions = body.get("dimensions")
        if isinstance(dimensions, int) and dimensions:
            if dimensions < 0 or dimensions > dim:
                raise ApiError(400, "invalid dimensions: %d" % dimensions)
        truncate = body.get("truncate") is not False
        tokens = 0
        vectors = []
        for text in inputs:
            count = len(tokenize(text)) + 1
            if not truncate and view.context_length and count > view.context_length:
                raise ApiError(400, "the input length exceeds the context length")
            tokens += count
            vector = raw_embedding(view.family, text, dim)
            if isinstance(dimensions, int) and dimensions:
                vector = vector[:dimensions]
            vectors.append(normalise(vector))
        done = time.monotonic_ns()
        self._json(200, {"model": given, "embeddings": vectors, "total_duration": done - started,
                         "load_duration": loaded - started, "prompt_eval_count": tokens})

    def h_embeddings(self) -> None:
        body = self._json_body("api.EmbeddingRequest")
        given = _string_field(body, "model", "api.EmbeddingRequest")
        if not Name.parse(given).is_valid():
            raise ApiError(400, "model is required")
        view = self._runnable(given, "model %s not found, try pulling it first" % go_quote(given))
        self.double.load(view, body.get("keep_alive"), body.get("options"))
        prompt = _string_field(body, "prompt", "api.EmbeddingRequest")
        if not prompt:
            self._json(200, {"embedding": []})
            return
        self._json(200, {"embedding": raw_embedding(view.family, prompt, view.embedding_length)})

    def _generate_like(self, go_type: str, capability: str) -> None:
        body = self._json_body(go_type)
        given = _string_field(body, "model", go_type)
        # Ollama answers 404, not 400, for an empty or invalid name here ("keeping with what the API returns")
        try:
            view = self.double.view(given)
        except FileNotFoundError:
            raise ApiError(404, "model '%s' not found" % given) from None
        if capability == "generate":
            prompt = _string_field(body, "prompt", go_type)
        else:
            messages = body.get("messages") or []
            prompt = "\n".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))
        now = rfc3339(time.time_ns())
        keep_alive = body.get("keep_alive")
        if not prompt and keep_alive is not None and keep_alive_ns(keep_alive, 1) == 0:
            self.double.unload(view)
            reply = {"model": given, "created_at": now, "done": True, "done_reason": "unload"}
            reply.update({"response": ""} if capability == "generate" else {"message": {"role": "assistant", "content": ""}})
            self._json(200, reply)
            return
        if view.is_embedding:
            raise ApiError(400, "%s does not support %s" % (go_quote(given), capability))
        started = time.monotonic_ns()
        self.double.load(view, keep_alive, body.get("options"))
        if not prompt:
            reply = {"model": given, "created_at": now, "done": True, "done_reason": "load"}
            reply.update({"response": ""} if capability == "generate" else {"message": {"role": "assistant", "content": ""}})
            self._json(200, reply)
            return
        text = fake_completion(view.name.shortest(), prompt)
        words = text.split(" ")
        pieces = [word + (" " if index < len(words) - 1 else "") for index, word in enumerate(words)]
        final = {"model": given, "created_at": now, "done": True, "done_reason": "stop",
                 "total_duration": 0, "load_duration": 0, "prompt_eval_count": len(tokenize(prompt)) + 1,
                 "prompt_eval_duration": 1000, "eval_count": len(pieces), "eval_duration": 1000}
        if capability == "generate":
            final["context"] = [1, 2, 3]

        def part(piece: str) -> dict:
            if capability == "generate":
                return {"model": given, "created_at": now, "response": piece, "done": False}
            return {"model": given, "created_at": now, "message": {"role": "assistant", "content": piece}, "done": False}

        if body.get("stream") is False:
            final.update(part(text))
            final["done"] = True
            final["total_duration"] = time.monotonic_ns() - started
            self._json(200, final)
            return
        self._start_stream()
        for piece in pieces:
            self._chunk(part(piece))
        final.update(part(""))
        final["done"] = True
        final["total_duration"] = time.monotonic_ns() - started
        self._chunk(final)
        self._end_stream()

    def h_generate(self) -> None:
        self._generate_like("api.GenerateRequest", "generate")

    def h_chat(self) -> None:
        self._generate_like("api.ChatRequest", "chat")

    # -- /_double/ control -----------------------------------------------
    def h_faults_get(self) -> None:
        with self.double.upstream.lock:
            self._json(200, dict(self.double.upstream.faults))

    def h_faults_post(self) -> None:
        self._json(200, self.double.upstream.set_faults(self._json_body("faults")))

    def h_upstream_get(self) -> None:
        self._json(200, self.double.upstream.describe())

    def h_upstream_post(self) -> None:
        self._json(200, self.double.upstream.add(self._json_body("upstream")))

    def h_stats(self) -> None:
        with self.double.upstream.lock:
            self._json(200, json.loads(json.dumps(self.double.upstream.stats)))

    def h_reset(self) -> None:
        self._read_body()
        self.double.upstream.reset()
        with self.double.loaded_lock:
            self.double.loaded.clear()
        self._json(200, {"status": "reset"})


ROUTES = {
    ("GET", "/"): "h_root", ("HEAD", "/"): "h_root",
    ("GET", "/api/version"): "h_version", ("GET", "/api/tags"): "h_tags", ("GET", "/api/ps"): "h_ps",
    ("POST", "/api/show"): "h_show", ("DELETE", "/api/delete"): "h_delete", ("POST", "/api/copy"): "h_copy",
    ("POST", "/api/pull"): "h_pull", ("POST", "/api/embed"): "h_embed", ("POST", "/api/embeddings"): "h_embeddings",
    ("POST", "/api/generate"): "h_generate", ("POST", "/api/chat"): "h_chat",
    ("GET", "/_double/faults"): "h_faults_get", ("POST", "/_double/faults"): "h_faults_post",
    ("GET", "/_double/upstream"): "h_upstream_get", ("POST", "/_double/upstream"): "h_upstream_post",
    ("GET", "/_double/stats"): "h_stats", ("POST", "/_double/reset"): "h_reset",
}
HEAD_ROUTES = ("/api/version", "/api/tags")


def _string_field(body: dict, field: str, go_type: str) -> str:
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        kind = {bool: "bool", int: "number", float: "number", list: "array", dict: "object"}.get(type(value), "value")
        raise ApiError(400, "json: cannot unmarshal %s into Go struct field %s.%s of type string" % (kind, go_type.split(".")[-1], field))
    return value


def show_body(store: Store, view: ModelView) -> dict:
    """The /api/show answer: modelfile, parameters, template, details, model_info, capabilities."""
    model_blob = ""
    for layer in view.manifest.get("layers") or []:
        if layer.get("mediaType") == LAYER_MEDIA_PREFIX + "model":
            model_blob = store.blob_path(layer["digest"])
    param_lines = []
    for key in sorted(view.params):
        values = view.params[key] if isinstance(view.params[key], list) else [view.params[key]]
        for value in values:
            param_lines.append("%-30s %s" % (key, go_quote(value) if isinstance(value, str) else json.dumps(value)))
    modelfile = ["# Modelfile generated by \"ollama show\"",
                 "# To build a new Modelfile based on this, replace FROM with:",
                 "# FROM %s" % view.name.shortest(), "", "FROM %s" % model_blob]
    if view.template is not None:
        modelfile.append('TEMPLATE """%s"""' % view.template)
    if view.system is not None:
        modelfile.append('SYSTEM """%s"""' % view.system)
    for key in sorted(view.params):
        values = view.params[key] if isinstance(view.params[key], list) else [view.params[key]]
        modelfile.extend("PARAMETER %s %s" % (key, value) for value in values)
    if view.license is not None:
        modelfile.append('LICENSE """%s"""' % view.license)
    body = {
        "license": view.license or "", "modelfile": "\n".join(modelfile) + "\n",
        "parameters": "\n".join(param_lines), "template": view.template or "",
        "details": view.details(), "model_info": view.meta or {"general.architecture": view.family},
        "capabilities": view.capabilities(), "modified_at": rfc3339(view.mtime_ns),
    }
    if view.system is not None:
        body["system"] = view.system
    return body


# ---------------------------------------------------------------- the pull

class PullCut(Exception):
    """The drop knob fired: the caller cuts the client connection."""


class Pull:
    """PullModel: manifest from upstream, blobs (resumable), verify, write, prune."""

    def __init__(self, double: Double, name: Name, sink) -> None:
        self.double = double
        self.name = name
        self.short = name.shortest()
        self.sink = sink
        self.last = {}
        self.client_gone = False
        self.transferred = 0
        self.drop_after = 0
        self.stall_after = 0
        self.stall_seconds = 0.0
        self.disk_room = 0

    def emit(self, obj: dict) -> None:
        self.last = obj
        if self.sink is None or self.client_gone:
            return
        try:
            self.sink(obj)
        except OSError:
            # like Ollama, a vanished client does not stop the blob being fetched
            self.client_gone = True

    def _manifest_url(self) -> str:
        return "https://%s/v2/%s/%s/manifests/%s" % (self.name.host, self.name.namespace, self.name.model, self.name.tag)

    def run(self) -> None:
        store = self.double.store
        upstream = self.double.upstream
        old = store.read_manifest(self.name)
        delete_candidates = set(layer_digests(old[0])) if old else set()
        self.emit({"status": "pulling manifest"})
        upstream.count(self.short, "pulls")
        if upstream.fault("unreachable"):
            raise ApiError(500, 'pull model manifest: Get "%s": dial tcp: lookup %s: no such host' % (self._manifest_url(), self.name.host))
        upstream.count(self.short, "manifest_requests")
        if self.short in upstream.fault("newer_version"):
            raise ApiError(500, "pull model manifest: 412: %s" % NEWER_VERSION_BODY)
        found = None if self.short in upstream.fault("unknown") else upstream.model(self.short)
        if found is None:
            raise ApiError(500, "pull model manifest: file does not exist")
        manifest_bytes, blobs = found
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        digests = layer_digests(manifest)
        self.drop_after = upstream.take_drop()
        self.stall_after, self.stall_seconds = upstream.take_stall()
        self.disk_room = upstream.fault("disk_full_after_bytes")
        cached = {}
        for digest in digests:
            cached[digest] = self._download(digest, blobs[digest])
            if self.client_gone:
                raise ApiError(499, "context canceled")
        self.emit({"status": "verifying sha256 digest"})
        for digest in digests:
            if cached[digest]:
                continue
            path = store.blob_path(digest)
            with open(path, "rb") as handle:
                got = "sha256:" + hashlib.sha256(handle.read()).hexdigest()
            if got != digest:
                os.remove(path)
                raise ApiError(500, "digest mismatch, file must be downloaded again: want %s, got %s" % (digest, got))
        self.emit({"status": "writing manifest"})
        with store.lock:
            path = store.manifest_path(self.name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(manifest_bytes)
            unused = delete_candidates - set(digests)
            if unused and not self.double.noprune:
                self.emit({"status": "removing unused layers"})
                store.delete_unused(unused)
        self.emit({"status": "success"})

    def _progress(self, digest: str, total: int, completed: int) -> None:
        line = {"status": "pulling %s" % digest[7:19], "digest": digest}
        if total:
            line["total"] = total
        if completed:
            line["completed"] = completed
        self.emit(line)

    def _download(self, digest: str, data: bytes) -> bool:
        """Fetch one blob; True when it was already cached."""
        store = self.double.store
        upstream = self.double.upstream
        final = store.blob_path(digest)
        with self.double.download_lock(digest):
            if os.path.isfile(final):
                size = os.path.getsize(final)
                self._progress(digest, size, size)
                return True
            if self.short in upstream.fault("corrupt") and len(data) > 1000:
                data = data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:]
            total = len(data)
            partial = final + "-partial"
            offset = os.path.getsize(partial) if os.path.isfile(partial) else 0
            if offset > total:
                offset = 0
            upstream.count(self.short, "blob_requests")
            rate = upstream.fault("rate")
            chunk = 65536 if rate <= 0 else max(1024, min(65536, rate // 20))
            started = time.monotonic()
            last_line = started
            sent = 0
            cut = False
            disk_full = False
            with open(partial, "r+b" if offset else "wb") as handle:
                handle.seek(offset)
                handle.truncate()
                position = offset
                while position < total:
                    size = min(chunk, total - position)
                    if self.stall_after and self.transferred >= self.stall_after:
                        self.stall_after = 0
                        time.sleep(self.stall_seconds)  # silent: no byte, no progress line
                    if self.drop_after:
                        room = self.drop_after - self.transferred
                        if room <= 0:
                            cut = True
                            break
                        size = min(size, room)
                    if self.disk_room:
                        room = self.disk_room - self.transferred
                        if room <= 0:
                            disk_full = True
                            break
                        size = min(size, room)
                    handle.write(data[position:position + size])
                    position += size
                    sent += size
                    self.transferred += size
                    upstream.count(self.short, "bytes_transferred", size)
                    if rate > 0:
                        ahead = sent / rate - (time.monotonic() - started)
                        if ahead > 0:
                            time.sleep(ahead)
                    now = time.monotonic()
                    # the closing completed == total line is the final_progress knob's alone
                    if now - last_line >= PROGRESS_INTERVAL and position < total:
                        last_line = now
                        self._progress(digest, total, position)
            with open(final + "-partial-0", "w", encoding="utf-8") as meta:
                json.dump({"N": 0, "Offset": 0, "Size": total, "Completed": position}, meta)
            if disk_full:
                # the write that failed is the partial's: Ollama names that file in its error
                raise ApiError(500, "write %s: no space left on device" % partial)
            if cut:
                if upstream.fault("drop_mode") == "error":
                    raise ApiError(500, "max retries exceeded: unexpected EOF")
                raise PullCut()
            os.replace(partial, final)
            os.remove(final + "-partial-0")
            if upstream.fault("final_progress"):
                self._progress(digest, total, total)
            return False


# ---------------------------------------------------------------- addresses

def split_host_port(text: str):
    """net.SplitHostPort, lenient: (host, port or '')."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        host = text[1:end] if end > 0 else text
        rest = text[end + 1:] if end > 0 else ""
        return host, rest[1:] if rest.startswith(":") else ""
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, ""


@functools.lru_cache(maxsize=1)
def local_ips() -> frozenset:
    addresses = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addresses.add(info[4][0])
    except OSError:
        pass
    return frozenset(addresses)


def go_split_host_port(text: str):
    """net.SplitHostPort: (host, port); ValueError where Go's fails (no port, bare IPv6)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1:].startswith(":"):
            raise ValueError("missing port in address")
        return text[1:end], text[end + 2:]
    if text.count(":") != 1:
        raise ValueError("missing port in address" if ":" not in text else "too many colons in address")
    host, port = text.split(":")
    return host, port


def parse_ollama_host(value: str | None):
    """envconfig.Host: (scheme, host, port) from OLLAMA_HOST."""
    text = (value or "").strip()
    default_port = "11434"
    scheme = "http"
    if "://" in text:
        scheme, text = text.split("://", 1)
        default_port = {"http": "80", "https": "443"}.get(scheme, default_port)
    hostport = text.split("/", 1)[0]
    try:
        host, port = go_split_host_port(hostport)
    except ValueError:
        host, port = "127.0.0.1", default_port
        try:
            host = str(ipaddress.ip_address(hostport.strip("[]")))
        except ValueError:
            if hostport:
                host = hostport
    if not port.isdigit() or int(port) > 65535:
        port = default_port
    return scheme, host, int(port)


def client_base_url() -> str:
    scheme, host, port = parse_ollama_host(os.environ.get("OLLAMA_HOST"))
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d" % (scheme, host, port)


# ---------------------------------------------------------------- compute discovery
#
# What Ollama v0.33 finds at start, decided as it does from what the container was given
# (OLLAMA-API.md, "Hardware support"): the double has no GPU library, so NVIDIA GPUs are
# the /dev/nvidia<N> nodes with the matching rows of the container's nvidia-smi (what the
# NVIDIA Container Toolkit, or its test-world stand-in, puts at /usr/bin/nvidia-smi), and
# AMD GPUs are /dev/kfd with one /dev/dri/renderD* node per GPU, described by knobs.
# OLLAMA_DOUBLE_ROOT (default /) is where /dev and /usr/bin/nvidia-smi are looked up.

NVIDIA_MIN_DRIVER = 550
NVIDIA_MIN_COMPUTE = (5, 0)
# Compute capability 5.0-6.2 (Maxwell, Pascal) needs a newer driver than the rest.
NVIDIA_OLD_COMPUTE_MAX = (6, 2)
NVIDIA_OLD_COMPUTE_MIN_DRIVER = 570
NVIDIA_SMI_FIELDS = ("index", "uuid", "name", "memory.total", "compute_cap", "pci.bus_id", "mig.mode.current")
# The CUDA version each driver branch reports (nvidia-smi's "CUDA Version"), what Ollama logs as driver=.
CUDA_BY_DRIVER = ((580, "13.0"), (575, "12.9"), (570, "12.8"), (565, "12.7"), (560, "12.6"), (555, "12.5"),
                  (550, "12.4"), (545, "12.3"), (535, "12.2"), (530, "12.1"), (525, "12.0"), (520, "11.8"))
ROCM_TARGETS = ("gfx908", "gfx90a", "gfx942", "gfx950", "gfx1030", "gfx1100", "gfx1101", "gfx1102", "gfx1150",
                "gfx1151", "gfx1200", "gfx1201")
ROCM_NAMES = {"gfx1030": "AMD Radeon RX 6800 XT", "gfx1100": "AMD Radeon RX 7900 XTX", "gfx1101": "AMD Radeon RX 7800 XT",
              "gfx1102": "AMD Radeon RX 7600", "gfx90a": "AMD Instinct MI210", "gfx942": "AMD Instinct MI300X",
              "gfx1034": "AMD Radeon RX 6500 XT", "gfx1032": "AMD Radeon RX 6600"}
ROCM_DRIVER = "60342.13"
DISCOVERY_SOURCE = "runner.go:153"
# What Ollama reports free beside the total (the double has nothing to measure).
VRAM_RESERVED_MIB = 512


class Compute:
    """What the startup discovery found: library CUDA|ROCm|cpu, the GPUs, the warnings to log."""

    def __init__(self, library: str, gpus=None, warnings=None) -> None:
        self.library = library
        self.gpus = gpus or []
        self.warnings = warnings or []

    @property
    def gpu(self) -> str:
        return {"CUDA": "cuda", "ROCm": "rocm"}.get(self.library, "cpu")

    def available_bytes(self) -> int:
        return sum(g["available_mib"] for g in self.gpus) * 1024 * 1024


def gib(mib: int) -> str:
    """Ollama's format.HumanBytes2 for the sizes it logs."""
    return "%.1f GiB" % (mib / 1024)


def _cc(text: str):
    match = re.match(r"^\s*(\d+)\.(\d+)\s*$", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def cuda_version(driver: str) -> str:
    match = re.match(r"^\s*(\d+)", driver or "")
    major = int(match.group(1)) if match else 0
    return next((cuda for branch, cuda in CUDA_BY_DRIVER if major >= branch), "11.0")


def _smi(path: str, *args: str):
    try:
        done = subprocess.run([path, *args], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    if done.returncode != 0:
        return None, (done.stderr or done.stdout).strip()[:200] or "exit status %d" % done.returncode
    return done.stdout, None


def parse_smi_rows(text: str) -> list:
    """nvidia-smi --query-gpu=NVIDIA_SMI_FIELDS --format=csv,noheader,nounits, a name with commas put back."""
    rows = []
    count = len(NVIDIA_SMI_FIELDS)
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < count or not parts[0].isdigit():
            continue
        extra = len(parts) - count
        parts = parts[:2] + [", ".join(parts[2:3 + extra])] + parts[3 + extra:]
        rows.append(dict(zip(NVIDIA_SMI_FIELDS, parts)))
    return rows


def pci_id(bus_id: str) -> str:
    """nvidia-smi's 00000000:01:00.0 as Ollama logs it (0000:01:00.0)."""
    match = re.match(r"^([0-9A-Fa-f]+):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2})\.([0-7])$", (bus_id or "").strip())
    if not match:
        return (bus_id or "").strip().lower()
    return "%04x:%s:%s.%s" % (int(match.group(1), 16) & 0xFFFF, match.group(2).lower(), match.group(3).lower(), match.group(4))


def _visible(tokens_text, gpus: list, key) -> list:
    """CUDA_VISIBLE_DEVICES-style selection: indexes into GPUS or ids (prefixes); stops at the first bad token."""
    if tokens_text is None:
        return [(str(i), g) for i, g in enumerate(gpus)]
    chosen = []
    for token in tokens_text.split(","):
        token = token.strip()
        if token.isdigit() and int(token) < len(gpus):
            match = gpus[int(token)]
        else:
            match = next((g for g in gpus if token and key(g) and key(g).startswith(token) and not token.isdigit()), None)
        if match is None:
            break
        if all(match is not m for dummy, m in chosen):
            chosen.append((token, match))
    return chosen


def discover_nvidia(root: str, env) -> Compute | None:
    """CUDA GPUs from /dev/nvidia<N> and nvidia-smi; None when the container was given none."""
    dev = os.path.join(root, "dev")
    try:
        minors = sorted(int(n[6:]) for n in os.listdir(dev) if re.match(r"^nvidia\d+$", n))
    except OSError:
        minors = []
    if not minors:
        return None
    warnings = []
    smi = os.path.join(root, "usr", "bin", "nvidia-smi")
    out, error = _smi(smi, "--query-gpu=" + ",".join(NVIDIA_SMI_FIELDS), "--format=csv,noheader,nounits")
    driver_out, driver_error = _smi(smi, "--query-gpu=driver_version", "--format=csv,noheader") if out is not None else (None, None)
    if out is None or driver_out is None:
        warnings.append(("WARN", "failure during GPU discovery", {
            "library": "CUDA", "devices": ",".join("/dev/nvidia%d" % m for m in minors),
            "error": "no usable NVIDIA driver in the container (%s: %s)" % (smi, error or driver_error)}))
        return Compute("cpu", warnings=warnings)
    driver = next((line.strip() for line in driver_out.splitlines() if re.match(r"^\d+\.", line.strip())), "")
    driver_major = int(driver.split(".")[0]) if driver else 0
    # nvidia-smi in a container lists what the host has; the container uses the GPUs whose node it was given.
    rows = [r for r in parse_smi_rows(out) if int(r["index"]) in minors]
    cuda_visible = env.get("CUDA_VISIBLE_DEVICES")
    if cuda_visible is not None and cuda_visible.strip() in ("", "-1"):
        return Compute("cpu")
    usable = []
    for token, row in _visible(cuda_visible, rows, lambda r: r["uuid"]):
        cc = _cc(row["compute_cap"])
        fields = {"id": row["uuid"], "description": row["name"], "compute": row["compute_cap"],
                  "pci_id": pci_id(row["pci.bus_id"]), "driver": driver}
        if cc is not None and cc < NVIDIA_MIN_COMPUTE:
            warnings.append(("WARN", "CUDA GPU is too old", dict(fields, minimum_compute="%d.%d" % NVIDIA_MIN_COMPUTE)))
            continue
        need = NVIDIA_OLD_COMPUTE_MIN_DRIVER if cc is not None and cc <= NVIDIA_OLD_COMPUTE_MAX else NVIDIA_MIN_DRIVER
        if driver_major < need:
            warnings.append(("WARN", "NVIDIA driver too old", dict(fields, minimum_driver=str(need))))
            continue
        total = int(re.match(r"^\s*(\d*)", row["memory.total"]).group(1) or 0)
        usable.append({"filter_id": token, "compute": row["compute_cap"], "description": row["name"],
                       "pci_id": pci_id(row["pci.bus_id"]), "total_mib": total,
                       "available_mib": max(total - VRAM_RESERVED_MIB, 0), "uuid": row["uuid"]})
    if not usable:
        return Compute("cpu", warnings=warnings)
    cuda = cuda_version(driver)
    for index, gpu in enumerate(usable):
        gpu.update(id=str(index), name="CUDA%d" % index, driver=cuda,
                   libdirs="ollama,cuda_v13" if int(cuda.split(".")[0]) >= 13 else "ollama,cuda_v12")
    return Compute("CUDA", usable, warnings)


def gfx_from_override(value: str):
    """HSA_OVERRIDE_GFX_VERSION 10.3.0 -> gfx1030 (the step in hex: 9.0.10 -> gfx90a)."""
    match = re.match(r"^\s*(\d+)\.(\d+)\.(\d+)\s*$", value or "")
    return "gfx%d%d%x" % tuple(int(g) for g in match.groups()) if match else None


def discover_rocm(root: str, env) -> Compute | None:
    """ROCm GPUs from /dev/kfd and the render nodes; None when the container was given none."""
    try:
        renders = sorted(n for n in os.listdir(os.path.join(root, "dev", "dri")) if re.match(r"^renderD\d+$", n))
    except OSError:
        renders = []
    if not os.path.exists(os.path.join(root, "dev", "kfd")) or not renders:
        return None
    gfx = (env.get("OLLAMA_DOUBLE_ROCM_GFX") or "gfx1030").strip().lower()
    try:
        vram = int(env.get("OLLAMA_DOUBLE_ROCM_VRAM_MIB") or 16384)
    except ValueError:
        vram = 16384
    gpus = [{"index": i, "render": r} for i, r in enumerate(renders)]
    selection = None
    for name in ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"):
        if env.get(name) is not None:
            if env[name].strip() in ("", "-1"):
                return Compute("cpu")
            selection = env[name] if selection is None else selection
    warnings, usable = [], []
    for token, gpu in _visible(selection, gpus, lambda g: None):
        override = env.get("HSA_OVERRIDE_GFX_VERSION_%d" % gpu["index"]) or env.get("HSA_OVERRIDE_GFX_VERSION")
        target = gfx_from_override(override) or gfx
        if target not in ROCM_TARGETS:
            warnings.append(("WARN", "amdgpu is not supported (supported types:[%s])" % " ".join(ROCM_TARGETS),
                             {"gpu_type": target, "gpu": str(gpu["index"]), "library": "ROCm"}))
            warnings.append(("INFO", "See https://github.com/ollama/ollama/blob/main/docs/gpu.md#overrides for "
                                     "HSA_OVERRIDE_GFX_VERSION usage", {}))
            continue
        usable.append({"filter_id": token, "compute": target, "description": ROCM_NAMES.get(gfx, "AMD Radeon Graphics"),
                       "pci_id": "0000:%02x:00.0" % (3 + gpu["index"]), "total_mib": vram,
                       "available_mib": max(vram - VRAM_RESERVED_MIB, 0)})
    if not usable:
        return Compute("cpu", warnings=warnings)
    for index, gpu in enumerate(usable):
        gpu.update(id=str(index), name="ROCm%d" % index, driver=ROCM_DRIVER, libdirs="ollama,rocm")
    return Compute("ROCm", usable, warnings)


def discover_compute(env=None, root: str | None = None) -> Compute:
    """Ollama's startup discovery: CUDA, then ROCm, else the CPU."""
    env = os.environ if env is None else env
    root = root if root is not None else (env.get("OLLAMA_DOUBLE_ROOT") or "/")
    nvidia = discover_nvidia(root, env)
    if nvidia is not None and nvidia.library != "cpu":
        return nvidia
    rocm = discover_rocm(root, env)
    # GPUs that were given but cannot be used: Ollama says why (the warnings) and goes on
    warnings = (nvidia.warnings if nvidia else []) + (rocm.warnings if rocm else [])
    if rocm is not None and rocm.library != "cpu":
        rocm.warnings = warnings
        return rocm
    return Compute("cpu", warnings=warnings)


# The lines a forced OLLAMA_DOUBLE_GPU logs: one made-up GPU of each kind.
FORCED_COMPUTE = {
    "cuda": Compute("CUDA", [{"id": "0", "filter_id": None, "compute": "8.9", "name": "CUDA0",
                              "description": "NVIDIA GeForce RTX 4090 (test double)", "libdirs": "ollama,cuda_v13",
                              "driver": "13.0", "pci_id": "0000:01:00.0", "total_mib": 24576, "available_mib": 24064}]),
    "rocm": Compute("ROCm", [{"id": "0", "filter_id": "0", "compute": "gfx1100", "name": "ROCm0",
                              "description": "AMD Radeon RX 7900 XTX (test double)", "libdirs": "ollama,rocm",
                              "driver": ROCM_DRIVER, "pci_id": "0000:03:00.0", "total_mib": 24576, "available_mib": 24064}]),
}


# ---------------------------------------------------------------- serve

def _log(level: str, source: str, msg: str, **fields) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).astimezone().isoformat(timespec="milliseconds")
    extra = "".join(" %s=%s" % (key, _logfmt(value)) for key, value in fields.items())
    sys.stderr.write("time=%s level=%s source=%s msg=%s%s\n" % (stamp, level, source, _logfmt(msg), extra))
    sys.stderr.flush()


def _logfmt(value) -> str:
    text = str(value)
    if text == "" or re.search(r'[\s"=]', text):
        return go_quote(text)
    return text


def _server_config(bind_url: str, models_dir: str, keep_alive: int) -> str:
    values = {key: os.environ.get(key, "") for key in SERVER_ENV_KEYS}
    values.update({
        "OLLAMA_HOST": bind_url, "OLLAMA_MODELS": models_dir, "OLLAMA_KEEP_ALIVE": go_format_duration(keep_alive),
        "OLLAMA_LOAD_TIMEOUT": go_format_duration(env_duration_ns("OLLAMA_LOAD_TIMEOUT", 300_000_000_000)),
        "OLLAMA_NUM_PARALLEL": str(_env_number("OLLAMA_NUM_PARALLEL", 1)),
        "OLLAMA_MAX_LOADED_MODELS": str(_env_number("OLLAMA_MAX_LOADED_MODELS", 0)),
        "OLLAMA_MAX_QUEUE": str(_env_number("OLLAMA_MAX_QUEUE", 512)),
        "OLLAMA_CONTEXT_LENGTH": str(_env_number("OLLAMA_CONTEXT_LENGTH", 0)),
        "OLLAMA_NOPRUNE": str(bool(os.environ.get("OLLAMA_NOPRUNE"))).lower(),
        "OLLAMA_SCHED_SPREAD": str(_env_flag("OLLAMA_SCHED_SPREAD", False)).lower(),
        "OLLAMA_GPU_OVERHEAD": str(_env_number("OLLAMA_GPU_OVERHEAD", 0)),
    })
    return "map[%s]" % " ".join("%s:%s" % (key, values[key]) for key in sorted(values))


def _inference_compute_line(double: Double) -> None:
    compute = double.compute()
    for level, msg, fields in compute.warnings:
        _log(level, DISCOVERY_SOURCE, msg, **fields)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    for gpu in compute.gpus:
        filter_id = gpu["filter_id"] if gpu["filter_id"] is not None else (visible or "0")
        _log("INFO", "types.go:60", "inference compute", id=gpu["id"], filter_id=filter_id, library=compute.library,
             compute=gpu["compute"], name=gpu["name"], description=gpu["description"], libdirs=gpu["libdirs"],
             driver=gpu["driver"], pci_id=gpu["pci_id"], type="discrete", total=gib(gpu["total_mib"]),
             available=gib(gpu["available_mib"]))
    if not compute.gpus:
        _log("INFO", "types.go:60", "inference compute", id="cpu", library="cpu", compute="", name="cpu",
             description="cpu", libdirs="ollama", driver="", pci_id="", type="", total="15.6 GiB", available="14.9 GiB")


class DoubleHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(models_dir: str, host: str, port: int):
    """Bind, set up state and prune; returns (server, Double). The caller serves."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bind_host = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")

    class _Server(DoubleHTTPServer):
        address_family = family

    server = _Server((bind_host, port), Handler)
    try:
        loopback = ipaddress.ip_address(bind_host).is_loopback
    except ValueError:
        loopback = bind_host == "localhost"
    double = Double(models_dir, bind_host, loopback, _log)
    server.RequestHandlerClass = type("BoundHandler", (Handler,), {"double": double})
    return server, double


def cmd_serve(args) -> int:
    env_host, env_port = parse_ollama_host(os.environ.get("OLLAMA_HOST"))[1:]
    host = args.host if args.host is not None else env_host
    port = args.port if args.port is not None else env_port
    models_dir = args.models or os.environ.get("OLLAMA_MODELS") or os.path.join(os.path.expanduser("~"), ".ollama", "models")
    try:
        server, double = make_server(models_dir, host, port)
    except OSError as exc:
        shown = "[%s]" % host if ":" in host else host
        sys.stderr.write("Error: listen tcp %s:%d: bind: %s\n" % (shown, port, (exc.strerror or str(exc)).lower()))
        return 1
    actual_host, actual_port = server.server_address[:2]
    shown = "[%s]" % actual_host if ":" in actual_host else actual_host
    _log("INFO", "routes.go:1570", "server config",
         env=_server_config("http://%s:%d" % (shown, actual_port), models_dir, double.keep_alive_ns))
    _log("WARN", "routes.go:1571", "this is the Ollama API TEST DOUBLE, not Ollama", models=models_dir)
    if double.noprune:
        _log("INFO", "images.go:1100", "pruning skipped", OLLAMA_NOPRUNE=os.environ.get("OLLAMA_NOPRUNE"))
    else:
        double.store.prune_at_start(_log)
    _log("INFO", "routes.go:1623", "Listening on %s:%d (version %s)" % (shown, actual_port, VERSION))
    _inference_compute_line(double)
    url_host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(actual_host, actual_host)
    url_host = "[%s]" % url_host if ":" in url_host else url_host

    def _terminate(signum, frame):  # pylint: disable=unused-argument
        # PID 1 in a container ignores SIGTERM unless a handler is installed
        raise SystemExit(0)

    # installed before the URL is printed: whoever reads the URL may stop us at once
    signal.signal(signal.SIGTERM, _terminate)
    sys.stdout.write("http://%s:%d\n" % (url_host, actual_port))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


# ---------------------------------------------------------------- client commands

class ClientError(Exception):
    pass


def client_request(method: str, path: str, body=None, timeout: float = 30.0):
    """(status, bytes) from the server at OLLAMA_HOST; ClientError when it cannot be reached."""
    parts = urllib.parse.urlsplit(client_base_url())
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    try:
        payload = go_json(body) if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": "ollama/" + VERSION}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        return response.status, response, conn
    except OSError:
        conn.close()
        raise ClientError("could not connect to ollama server, run 'ollama serve' to start it") from None


def _error_of(status: int, data: bytes) -> str:
    try:
        return json.loads(data.decode("utf-8"))["error"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "%d %s" % (status, data.decode("utf-8", "replace").strip())


def _table(rows: list) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("    ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def cmd_list(args) -> int:
    status, response, conn = client_request("GET", "/api/tags")
    data = response.read()
    conn.close()
    if status != 200:
        raise ClientError(_error_of(status, data))
    now = time.time()
    rows = [["NAME", "ID", "SIZE", "MODIFIED"]]
    for model in json.loads(data.decode("utf-8")).get("models", []):
        if args.prefix and not model["name"].lower().startswith(args.prefix.lower()):
            continue
        rows.append([model["name"], model["digest"][:12], human_bytes(model["size"]),
                     human_time(parse_rfc3339(model["modified_at"]), now)])
    sys.stdout.write(_table(rows))
    return 0


def cmd_ps(_args) -> int:
    status, response, conn = client_request("GET", "/api/ps")
    data = response.read()
    conn.close()
    if status != 200:
        raise ClientError(_error_of(status, data))
    now = time.time()
    rows = [["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]]
    for model in json.loads(data.decode("utf-8")).get("models", []):
        processor = "100% GPU" if model.get("size_vram") else "100% CPU"
        rows.append([model["name"], model["digest"][:12], human_bytes(model["size"]), processor,
                     str(model.get("context_length", "")), human_time(parse_rfc3339(model["expires_at"]), now)])
    sys.stdout.write(_table(rows))
    return 0


def cmd_pull(args) -> int:
    status, response, conn = client_request("POST", "/api/pull", {"model": args.name, "insecure": args.insecure}, timeout=600)
    try:
        if status != 200:
            raise ClientError(_error_of(status, response.read()))
        last = ""
        try:
            for raw in response:
                if not raw.strip():
                    continue
                line = json.loads(raw.decode("utf-8"))
                if "error" in line:
                    raise ClientError(line["error"])
                if line.get("status") != last or "completed" not in line:
                    sys.stdout.write(line.get("status", "") + "\n")
                    sys.stdout.flush()
                last = line.get("status", "")
        except (http.client.HTTPException, OSError):
            raise ClientError("unexpected EOF") from None
    finally:
        conn.close()
    return 0


def cmd_rm(args) -> int:
    for name in args.names:
        status, response, conn = client_request("DELETE", "/api/delete", {"model": name})
        data = response.read()
        conn.close()
        if status != 200:
            raise ClientError(_error_of(status, data))
        sys.stdout.write("deleted '%s'\n" % name)
    return 0


def cmd_version() -> int:
    server_version = ""
    try:
        status, response, conn = client_request("GET", "/api/version", timeout=5)
        data = response.read()
        conn.close()
        if status == 200:
            server_version = json.loads(data.decode("utf-8")).get("version", "")
    except (ClientError, ValueError, OSError, http.client.HTTPException):
        sys.stdout.write("Warning: could not connect to a running Ollama instance\n")
    if server_version:
        sys.stdout.write("ollama version is %s\n" % server_version)
    if server_version != VERSION:
        sys.stdout.write("Warning: client version is %s\n" % VERSION)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ollama", description="Large language model runner (Ollama API TEST DOUBLE)")
    parser.add_argument("-v", "--version", action="store_true", help="Show version information")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", aliases=["start"], help="Start ollama (the test double)")
    serve.add_argument("--host", default=None, help="bind address (default from OLLAMA_HOST)")
    serve.add_argument("--port", type=int, default=None, help="bind port; 0 picks a free one (default from OLLAMA_HOST)")
    serve.add_argument("--models", default=None, help="models directory (default OLLAMA_MODELS or ~/.ollama/models)")
    list_cmd = sub.add_parser("list", aliases=["ls"], help="List models")
    list_cmd.add_argument("prefix", nargs="?", default="")
    sub.add_parser("ps", help="List running models")
    pull = sub.add_parser("pull", help="Pull a model from a registry")
    pull.add_argument("name")
    pull.add_argument("--insecure", action="store_true")
    remove = sub.add_parser("rm", help="Remove a model")
    remove.add_argument("names", nargs="+")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        return cmd_version()
    handlers = {"serve": cmd_serve, "start": cmd_serve, "list": cmd_list, "ls": cmd_list, "ps": cmd_ps,
                "pull": cmd_pull, "rm": cmd_rm}
    if args.command not in handlers:
        parser.print_help()
        return 0
    try:
        return handlers[args.command](args)
    except ClientError as exc:
        sys.stderr.write("Error: %s\n" % exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
