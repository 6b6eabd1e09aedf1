"""Pins the Ollama API test double to the facts in OLLAMA-API.md.

Each test starts the double as a subprocess (`serve --port 0 --models <tmp>`), exactly as an
image or a scenario would, and talks HTTP to it; a few import the module for its pure helpers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import ollama
import pytest
import requests

DOUBLE_DIR = Path(__file__).resolve().parents[3] / "tests" / "world" / "ollama_double"
DOUBLE_PY = DOUBLE_DIR / "ollama_double.py"
SHIM = DOUBLE_DIR / "ollama"

PULL_TAIL = ["verifying sha256 digest", "writing manifest", "success"]


def manifest_path(double, name="llama3.2", tag="latest", namespace="library", host="registry.ollama.ai"):
    return double.models / "manifests" / host / namespace / name / tag


def read_manifest(double, *args, **kwargs) -> dict:
    return json.loads(manifest_path(double, *args, **kwargs).read_bytes())


def blob_path(double, digest: str):
    return double.models / "blobs" / digest.replace(":", "-")


def all_digests(manifest: dict) -> list:
    return [layer["digest"] for layer in manifest["layers"]] + [manifest["config"]["digest"]]


def tags(double) -> list:
    response = double.get("/api/tags")
    assert response.status_code == 200
    return response.json()["models"]


# ------------------------------------------------------------------ serve, root, version, logs

def test_serve_prints_url_first_and_answers_root(double):
    assert double.url.startswith("http://127.0.0.1:")
    response = double.get("/")
    assert (response.status_code, response.text) == (200, "Ollama is running")
    assert response.headers["Content-Type"].startswith("text/plain")
    head = double.http.head(double.url + "/", timeout=5)
    assert head.status_code == 200 and head.text == ""
    assert double.get("/api/version").json() == {"version": "0.33.0"}
    assert double.get("/api/nope").status_code == 404


def test_startup_log_cpu_by_default_and_server_config(start_double):
    double = start_double(env={"OLLAMA_KEEP_ALIVE": "10m", "OLLAMA_NUM_PARALLEL": "4", "OLLAMA_KV_CACHE_TYPE": "q8_0"})
    log = double.log()
    assert 'msg="inference compute" id=cpu library=cpu' in log
    assert "library=CUDA" not in log
    config = next(line for line in log.splitlines() if 'msg="server config"' in line)
    for expected in ("OLLAMA_KEEP_ALIVE:10m0s", "OLLAMA_NUM_PARALLEL:4", "OLLAMA_KV_CACHE_TYPE:q8_0",
                     "OLLAMA_MODELS:%s" % double.models):
        assert expected in config
    assert "Listening on 127.0.0.1:" in log


def test_cuda_knob_logs_cuda_and_reports_vram(start_double):
    double = start_double(env={"OLLAMA_DOUBLE_GPU": "cuda"})
    assert "library=CUDA compute=8.9 name=CUDA0" in double.log()
    double.pull("qwen2.5:0.5b")
    double.post("/api/generate", {"model": "qwen2.5:0.5b"})
    (loaded,) = double.get("/api/ps").json()["models"]
    assert loaded["size_vram"] == loaded["size"] > 0


def test_cuda_visible_devices_minus_one_forces_cpu(start_double):
    double = start_double(env={"OLLAMA_DOUBLE_GPU": "cuda", "CUDA_VISIBLE_DEVICES": "-1"})
    assert "id=cpu library=cpu" in double.log()


# ------------------------------------------------------------------ pull

def test_pull_streams_the_real_status_sequence(double):
    lines = double.pull_lines("llama3.2")
    assert lines[0] == {"status": "pulling manifest"}
    assert [line["status"] for line in lines[-3:]] == PULL_TAIL
    manifest = read_manifest(double)
    layer_lines = lines[1:-3]
    seen = []
    for line in layer_lines:
        assert set(line) <= {"status", "digest", "total", "completed"}
        assert line["status"] == "pulling " + line["digest"][7:19]
        assert line.get("completed", 1) > 0 and line.get("total", 1) > 0
        if not seen or seen[-1] != line["digest"]:
            seen.append(line["digest"])
    # config last; every layer and the config got at least one line
    assert seen == all_digests(manifest)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    kinds = [layer["mediaType"] for layer in manifest["layers"]]
    assert kinds[0] == "application/vnd.ollama.image.model"
    assert all(kind.startswith("application/vnd.ollama.image.") for kind in kinds)
    for digest in all_digests(manifest):
        assert hashlib.sha256(blob_path(double, digest).read_bytes()).hexdigest() == digest[7:]
    assert not list((double.models / "blobs").glob("*partial*"))


def test_concurrent_pulls_of_one_model_fetch_each_blob_once(double):
    results = []
    threads = [threading.Thread(target=lambda: results.append(double.pull_lines("llama3.2:1b")[-1])) for _index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [{"status": "success"}] * 3
    assert double.stats()["bytes_transferred"] == tags(double)[0]["size"]


def test_pull_stream_false_answers_one_success_object(double):
    response = double.post("/api/pull", {"model": "all-minilm", "stream": False})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"status": "success"}
    assert [m["name"] for m in tags(double)] == ["all-minilm:latest"]


def test_repull_of_present_model_contacts_upstream_once_and_transfers_nothing(double):
    double.pull("llama3.2")
    old = time.time() - 7200
    os.utime(manifest_path(double), (old, old))
    before = double.stats()
    lines = double.pull_lines("llama3.2")
    after = double.stats()
    assert after["manifest_requests"] - before["manifest_requests"] == 1
    assert after["blob_requests"] == before["blob_requests"]
    assert after["bytes_transferred"] == before["bytes_transferred"]
    layer_lines = lines[1:-3]
    assert [line["digest"] for line in layer_lines] == all_digests(read_manifest(double))
    assert all(line["completed"] == line["total"] for line in layer_lines)
    assert "removing unused layers" not in [line["status"] for line in lines]
    assert manifest_path(double).stat().st_mtime > old + 3600  # rewritten: modified_at bumped


def test_pull_unknown_model_streaming_is_200_then_error_line(double):
    lines = double.pull_lines("no-such-model")
    assert lines == [{"status": "pulling manifest"}, {"error": "pull model manifest: file does not exist"}]
    response = double.post("/api/pull", {"model": "no-such-model", "stream": False})
    assert (response.status_code, response.json()) == (500, {"error": "pull model manifest: file does not exist"})
    assert response.headers["Content-Type"].startswith("application/json")


def test_pull_unknown_knob_hides_a_catalog_model(double):
    double.faults(unknown=["llama3.2:1b"])
    assert double.pull_lines("llama3.2:1b")[-1] == {"error": "pull model manifest: file does not exist"}
    double.pull("llama3.2:latest")


def test_pull_bad_name_is_400(double):
    for body in ({"model": "hf.co/repo"}, {"model": ""}, {"model": "llama3.2:"}, {"model": "a/b/c/d"}):
        response = double.post("/api/pull", body)
        assert (response.status_code, response.json()) == (400, {"error": "invalid model name"}), body


def test_pull_insecure_http_name_errors_before_the_first_line(double):
    response = double.post("/api/pull", {"model": "http://localhost:5000/library/x"})
    assert (response.status_code, response.json()) == (500, {"error": "insecure protocol http"})


def test_pull_unreachable_upstream(start_double):
    double = start_double(env={"OLLAMA_DOUBLE_UNREACHABLE": "1"})
    lines = double.pull_lines("llama3.2:1b")
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[1]["error"].startswith(
        'pull model manifest: Get "https://registry.ollama.ai/v2/library/llama3.2/manifests/1b": dial tcp')
    response = double.post("/api/pull", {"model": "llama3.2", "stream": False})
    assert response.status_code == 500 and response.json()["error"].startswith("pull model manifest: Get ")
    assert double.stats()["manifest_requests"] == 0
    double.faults(unreachable=False)
    double.pull("llama3.2:1b")


def test_pull_model_needing_newer_ollama(double):
    double.faults(newer_version=["qwen2.5:0.5b"])
    lines = double.pull_lines("qwen2.5:0.5b")
    assert lines[-1]["error"].startswith("pull model manifest: 412: ")
    assert "requires a newer version of Ollama" in lines[-1]["error"]
    response = double.post("/api/pull", {"model": "qwen2.5:0.5b", "stream": False})
    assert response.status_code == 500 and "412" in response.json()["error"]
    assert tags(double) == []


def test_dropped_connection_leaves_partial_and_next_pull_resumes(double):
    double.faults(drop_after_bytes=400_000)
    response = double.http.post(double.url + "/api/pull", json={"model": "llama3.2"}, stream=True, timeout=30)
    statuses = []
    with pytest.raises(requests.exceptions.RequestException):
        for line in response.iter_lines():
            if line:
                statuses.append(json.loads(line).get("status"))
    assert "success" not in statuses
    partials = list((double.models / "blobs").glob("sha256-*-partial"))
    assert len(partials) == 1 and partials[0].stat().st_size == 400_000
    assert double.stats()["bytes_transferred"] == 400_000
    assert tags(double) == []

    lines = double.pull_lines("llama3.2")
    assert lines[-1] == {"status": "success"}
    total = sum(layer["size"] for layer in read_manifest(double)["layers"]) + read_manifest(double)["config"]["size"]
    assert double.stats()["bytes_transferred"] == total  # only the rest travelled the second time
    assert not list((double.models / "blobs").glob("*partial*"))
    model_digest = read_manifest(double)["layers"][0]["digest"]
    assert hashlib.sha256(blob_path(double, model_digest).read_bytes()).hexdigest() == model_digest[7:]


def test_drop_mode_error_ends_the_stream_with_an_error_line(double):
    double.faults(drop_after_bytes=1000, drop_mode="error")
    assert double.pull_lines("all-minilm")[-1] == {"error": "max retries exceeded: unexpected EOF"}
    double.pull("all-minilm")


def test_disk_full_ends_the_pull_with_enospc_and_keeps_the_partial(double):
    double.faults(disk_full_after_bytes=250_000)
    lines = double.pull_lines("qwen2.5:0.5b")
    assert "success" not in [line.get("status") for line in lines]
    (partial,) = (double.models / "blobs").glob("sha256-*-partial")
    assert partial.stat().st_size == 250_000
    assert lines[-1] == {"error": "write %s: no space left on device" % partial}
    assert tags(double) == []
    response = double.post("/api/pull", {"model": "qwen2.5:0.5b", "stream": False})
    assert response.status_code == 500 and response.json()["error"].endswith(": no space left on device")
    assert partial.stat().st_size == 500_000  # the second pull resumed and hit the limit again
    double.faults(disk_full_after_bytes=0)
    double.pull("qwen2.5:0.5b")  # room again: the pull resumes the partial
    manifest = read_manifest(double, "qwen2.5", "0.5b")
    # every byte crossed once over the three pulls: partials were resumed, never fetched again
    assert double.stats()["bytes_transferred"] == sum(layer["size"] for layer in manifest["layers"]) + \
        manifest["config"]["size"]


def test_disk_full_knob_from_the_environment(start_double):
    double = start_double(env={"OLLAMA_DOUBLE_DISK_FULL_AFTER_BYTES": "1000"})
    assert double.get("/_double/faults").json()["disk_full_after_bytes"] == 1000
    assert double.pull_lines("all-minilm")[-1]["error"].endswith("-partial: no space left on device")


def test_stall_goes_silent_once_then_the_pull_goes_on(double, start_double):
    double.faults(stall_after_bytes=100_000, stall_seconds=2)
    started = time.monotonic()
    lines = double.pull_lines("qwen2.5:0.5b")
    assert lines[-1] == {"status": "success"} and time.monotonic() - started >= 2
    assert double.get("/_double/faults").json()["stall_after_bytes"] == 100_000
    double.delete("qwen2.5:0.5b")
    started = time.monotonic()
    double.pull_lines("qwen2.5:0.5b")  # once per setting: the second pull is not held up
    assert time.monotonic() - started < 2
    from_env = start_double(env={"OLLAMA_DOUBLE_STALL_AFTER_BYTES": "5000", "OLLAMA_DOUBLE_STALL_SECONDS": "0.5"})
    faults = from_env.get("/_double/faults").json()
    assert faults["stall_after_bytes"] == 5000 and faults["stall_seconds"] == 0.5


def test_official_client_sees_a_cut_pull_as_an_error(double):
    double.faults(drop_after_bytes=100_000)
    client = ollama.Client(host=double.url)
    with pytest.raises(Exception):
        list(client.pull("nomic-embed-text", stream=True))
    assert client.pull("nomic-embed-text").status == "success"


def test_changed_upstream_digest_downloads_new_layer_and_removes_unused(double):
    double.pull("llama3.2")
    old_manifest = read_manifest(double)
    old_digest = tags(double)[0]["digest"]
    response = double.post("/_double/upstream", {"model": "llama3.2", "revision": 2})
    assert response.status_code == 200
    before = double.stats()["bytes_transferred"]
    statuses = [line["status"] for line in double.pull_lines("llama3.2")]
    assert statuses[-4:] == ["verifying sha256 digest", "writing manifest", "removing unused layers", "success"]
    new_manifest = read_manifest(double)
    assert new_manifest["layers"][0]["digest"] != old_manifest["layers"][0]["digest"]
    assert new_manifest["layers"][1:] == old_manifest["layers"][1:]  # template/license/params unchanged
    assert not blob_path(double, old_manifest["layers"][0]["digest"]).exists()
    assert not blob_path(double, old_manifest["config"]["digest"]).exists()
    transferred = double.stats()["bytes_transferred"] - before
    assert transferred == new_manifest["layers"][0]["size"] + new_manifest["config"]["size"]
    assert tags(double)[0]["digest"] != old_digest


def test_changed_upstream_with_noprune_keeps_old_layers(start_double):
    double = start_double(env={"OLLAMA_NOPRUNE": "1", "OLLAMA_DOUBLE_REVISIONS": "qwen2.5:0.5b=5"})
    double.pull("qwen2.5:0.5b")
    old = read_manifest(double, "qwen2.5", "0.5b")
    double.post("/_double/upstream", {"model": "qwen2.5:0.5b", "revision": 6})
    statuses = [line["status"] for line in double.pull_lines("qwen2.5:0.5b")]
    assert "removing unused layers" not in statuses
    assert blob_path(double, old["layers"][0]["digest"]).exists()


def test_removing_unused_layers_keeps_blobs_other_manifests_use(double):
    double.pull("llama3.2")
    double.post("/api/copy", {"source": "llama3.2", "destination": "keep/me"})
    old = read_manifest(double)
    double.post("/_double/upstream", {"model": "llama3.2", "revision": 3})
    assert "removing unused layers" in [line["status"] for line in double.pull_lines("llama3.2")]
    assert blob_path(double, old["layers"][0]["digest"]).exists()


def test_slow_knob_measurably_slows_and_reports_progress(double):
    started = time.monotonic()
    double.pull("qwen2.5:0.5b")
    fast = time.monotonic() - started
    double.delete("qwen2.5:0.5b")
    double.faults(rate=1_500_000)
    started = time.monotonic()
    lines = double.pull_lines("qwen2.5:0.5b")
    slow = time.monotonic() - started
    assert slow >= 0.35 and slow > 3 * fast
    model_lines = [line for line in lines if line.get("digest") == read_manifest(double, "qwen2.5", "0.5b")["layers"][0]["digest"]]
    completed = [line.get("completed", 0) for line in model_lines]
    assert len(model_lines) >= 3 and completed == sorted(completed)
    assert model_lines[-1]["completed"] == model_lines[-1]["total"]


def test_final_progress_knob_may_stop_short_of_total(double):
    double.faults(rate=1_500_000, final_progress=False)
    lines = double.pull_lines("qwen2.5:0.5b")
    model = read_manifest(double, "qwen2.5", "0.5b")["layers"][0]
    model_lines = [line for line in lines if line.get("digest") == model["digest"]]
    assert model_lines and model_lines[-1].get("completed", 0) < model["size"]
    assert lines[-1] == {"status": "success"}


def test_corrupt_knob_gives_digest_mismatch(double):
    double.faults(corrupt=["all-minilm"])
    error = double.pull_lines("all-minilm")[-1]["error"]
    assert error.startswith("digest mismatch, file must be downloaded again: want sha256:")
    assert tags(double) == []
    double.faults(corrupt=[])
    double.pull("all-minilm")


def test_stats_per_model_and_reset(double):
    double.pull("all-minilm")
    stats = double.stats()
    per = stats["models"]["all-minilm:latest"]
    assert per["manifest_requests"] == 1 and per["blob_requests"] == len(all_digests(read_manifest(double, "all-minilm")))
    assert per["bytes_transferred"] == tags(double)[0]["size"] == stats["bytes_transferred"]
    double.faults(unreachable=True, rate=5)
    assert double.post("/_double/reset", {}).status_code == 200
    assert double.stats()["manifest_requests"] == 0 and double.stats()["models"] == {}
    faults = double.get("/_double/faults").json()
    assert faults["unreachable"] is False and faults["rate"] == 0
    assert double.post("/_double/faults", {"no_such_knob": 1}).status_code == 400


def test_upstream_listing_and_extra_names(double):
    listing = double.get("/_double/upstream").json()["models"]
    names = {item["model"] for item in listing}
    assert {"llama3.2:latest", "llama3.2:1b", "qwen2.5:0.5b", "nomic-embed-text:latest", "all-minilm:latest",
            "mxbai-embed-large:latest"} <= names
    response = double.post("/_double/upstream", {"model": "hf.co/org/repo:Q4_K_M", "like": "qwen2.5:0.5b"})
    assert response.status_code == 200
    double.pull("hf.co/org/repo:Q4_K_M")
    assert manifest_path(double, "repo", "Q4_K_M", "org", "hf.co").is_file()
    assert tags(double)[0]["name"] == "hf.co/org/repo:Q4_K_M"


# ------------------------------------------------------------------ tags, on-disk store

def test_tags_empty_store(double):
    assert double.get("/api/tags").json() == {"models": []}


def test_tags_entry_shape(double):
    double.pull("llama3.2")
    (entry,) = tags(double)
    raw = manifest_path(double).read_bytes()
    manifest = json.loads(raw)
    assert entry["name"] == entry["model"] == "llama3.2:latest"
    assert entry["digest"] == hashlib.sha256(raw).hexdigest()
    assert entry["size"] == sum(layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
    details = entry["details"]
    assert {k: details[k] for k in ("parent_model", "format", "family", "families", "parameter_size", "quantization_level")} == {
        "parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
        "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}
    assert details["context_length"] == 131072 and details["embedding_length"] == 3072
    assert entry["capabilities"] == ["completion", "tools"]
    assert entry["modified_at"].endswith("Z") or entry["modified_at"][-6] in "+-"


def test_tags_sorted_newest_first(double):
    for model in ("all-minilm", "nomic-embed-text", "llama3.2:1b"):
        double.pull(model)
    now = time.time()
    for offset, (name, tag) in enumerate((("nomic-embed-text", "latest"), ("llama3.2", "1b"), ("all-minilm", "latest"))):
        os.utime(manifest_path(double, name, tag), (now - 100 * offset, now - 100 * offset))
    assert [m["name"] for m in tags(double)] == ["nomic-embed-text:latest", "llama3.2:1b", "all-minilm:latest"]


def test_manifest_without_config_blob_is_left_out(double):
    double.pull("all-minilm")
    double.pull("llama3.2:1b")
    blob_path(double, read_manifest(double, "all-minilm")["config"]["digest"]).unlink()
    assert [m["name"] for m in tags(double)] == ["llama3.2:1b"]


def test_seeding_by_file_copy_needs_no_restart(start_double):
    source = start_double()
    source.pull("nomic-embed-text")
    target = start_double()
    assert tags(target) == []
    manifest = read_manifest(source, "nomic-embed-text")
    (target.models / "blobs").mkdir(parents=True, exist_ok=True)
    for digest in all_digests(manifest):
        shutil.copyfile(blob_path(source, digest), blob_path(target, digest))
    destination = manifest_path(target, "nomic-embed-text")
    destination.parent.mkdir(parents=True)
    shutil.copyfile(manifest_path(source, "nomic-embed-text"), destination)
    (entry,) = tags(target)
    assert entry["name"] == "nomic-embed-text:latest" and entry["digest"] == tags(source)[0]["digest"]
    assert target.post("/api/embed", {"model": "nomic-embed-text", "input": "x"}).status_code == 200


def test_prune_at_start_removes_old_unreferenced_blobs_only(start_double, tmp_path):
    first = start_double()
    first.pull("all-minilm")
    first.stop()
    blobs = first.models / "blobs"
    old = time.time() - 7200
    stale = blobs / ("sha256-" + "a" * 64)
    stale_partial = blobs / ("sha256-" + "b" * 64 + "-partial")
    fresh = blobs / ("sha256-" + "c" * 64)
    for path in (stale, stale_partial, fresh):
        path.write_bytes(b"junk")
    for path in [stale, stale_partial] + list(blobs.glob("sha256-*")):
        if path != fresh:
            os.utime(path, (old, old))
    referenced = [blob_path(first, d) for d in all_digests(read_manifest(first, "all-minilm"))]

    kept = start_double(env={"OLLAMA_NOPRUNE": "1"}, models=first.models)
    assert stale.exists() and stale_partial.exists()
    kept.stop()

    start_double(models=first.models)
    assert not stale.exists() and not stale_partial.exists()
    assert fresh.exists()
    assert all(path.exists() for path in referenced)
    del tmp_path


# ------------------------------------------------------------------ show, delete, copy, names

def test_show_body(double):
    double.pull("llama3.2")
    response = double.post("/api/show", {"model": "llama3.2"})
    assert response.status_code == 200
    body = response.json()
    for key in ("license", "modelfile", "parameters", "template", "details", "model_info", "capabilities", "modified_at"):
        assert key in body, key
    assert body["modelfile"].startswith('# Modelfile generated by "ollama show"')
    assert "FROM %s" % blob_path(double, read_manifest(double)["layers"][0]["digest"]) in body["modelfile"]
    assert "<|start_header_id|>" in body["template"]
    assert 'stop                           "<|eot_id|>"' in body["parameters"]
    assert body["model_info"]["general.architecture"] == "llama"
    assert body["model_info"]["llama.embedding_length"] == 3072
    assert body["model_info"]["llama.context_length"] == 131072
    assert body["capabilities"] == ["completion", "tools"]
    assert body["details"]["family"] == "llama"
    embed = double
    embed.pull("mxbai-embed-large")
    info = embed.post("/api/show", {"name": "mxbai-embed-large"}).json()
    assert info["capabilities"] == ["embedding"]
    assert info["model_info"]["bert.embedding_length"] == 1024


def test_show_errors(double):
    cases = [
        ({"model": "nope"}, 404, "model 'nope:latest' not found"),
        ({"model": "registry.ollama.ai/library/nope:v1"}, 404, "model 'nope:v1' not found"),
        ({"model": "someone/nope"}, 404, "model 'someone/nope:latest' not found"),
        ({"model": ""}, 400, "model is required"),
        ({}, 400, "model is required"),
        ({"model": "hf.co/repo"}, 400, "invalid model name"),
    ]
    for body, status, error in cases:
        response = double.post("/api/show", body)
        assert (response.status_code, response.json()) == (status, {"error": error}), body


@pytest.mark.parametrize("path", ["/api/show", "/api/pull", "/api/copy", "/api/embed", "/api/embeddings", "/api/generate"])
def test_missing_body_is_400(double, path):
    response = double.http.post(double.url + path, timeout=5)
    assert (response.status_code, response.json()) == (400, {"error": "missing request body"})


def test_missing_body_on_delete_is_400(double):
    response = double.http.delete(double.url + "/api/delete", timeout=5)
    assert (response.status_code, response.json()) == (400, {"error": "missing request body"})


def test_lookups_are_case_insensitive(double):
    double.pull("llama3.2:1b")
    assert double.post("/api/show", {"model": "LLAMA3.2:1B"}).status_code == 200
    lines = double.pull_lines("Llama3.2:1B")
    assert lines[-1] == {"status": "success"}
    assert [m["name"] for m in tags(double)] == ["llama3.2:1b"]
    assert double.post("/api/generate", {"model": "Registry.Ollama.AI/Library/LLAMA3.2:1b"}).json()["done_reason"] == "load"


def test_delete_removes_manifest_and_only_unshared_blobs(double):
    double.pull("llama3.2")
    double.pull("llama3.2:1b")
    small = read_manifest(double, "llama3.2", "1b")
    big = read_manifest(double)
    shared = set(all_digests(small)) & set(all_digests(big))
    assert shared  # template, license and params are common to both tags
    response = double.delete("llama3.2:1b")
    assert (response.status_code, response.content) == (200, b"")
    assert not manifest_path(double, "llama3.2", "1b").exists()
    for digest in all_digests(small):
        assert blob_path(double, digest).exists() == (digest in shared)
    assert [m["name"] for m in tags(double)] == ["llama3.2:latest"]
    assert double.delete("llama3.2").status_code == 200
    assert not list((double.models / "blobs").iterdir())


def test_delete_errors(double):
    cases = [
        ("nope", 404, "model 'nope' not found"),
        ("Nope:v2", 404, "model 'Nope:v2' not found"),
        ("", 400, "model is required"),
        ("hf.co/repo", 400, 'name "hf.co/repo" is invalid'),
    ]
    for name, status, error in cases:
        response = double.delete(name)
        assert (response.status_code, response.json()) == (status, {"error": error}), name
    response = double.http.delete(double.url + "/api/delete", json={"name": "nope"}, timeout=5)
    assert response.json() == {"error": "model 'nope' not found"}


def test_copy_same_digest_and_errors(double):
    double.pull("all-minilm")
    response = double.post("/api/copy", {"source": "all-minilm", "destination": "team/minilm:v1"})
    assert (response.status_code, response.content) == (200, b"")
    by_name = {m["name"]: m for m in tags(double)}
    assert by_name["team/minilm:v1"]["digest"] == by_name["all-minilm:latest"]["digest"]
    cases = [
        ({"source": "ghost", "destination": "x"}, 404, 'model "ghost" not found'),
        ({"source": "hf.co/repo", "destination": "x"}, 400, 'source "hf.co/repo" is invalid'),
        ({"source": "all-minilm", "destination": "a:b:"}, 400, 'destination "a:b:" is invalid'),
    ]
    for body, status, error in cases:
        response = double.post("/api/copy", body)
        assert (response.status_code, response.json()) == (status, {"error": error}), body


@pytest.mark.parametrize("text, shortest", [
    ("llama3.2", "llama3.2:latest"),
    ("llama3.2:latest", "llama3.2:latest"),
    ("registry.ollama.ai/library/llama3.2:latest", "llama3.2:latest"),
    ("  llama3.2  ", "llama3.2:latest"),
    ("mattw/pygmalion", "mattw/pygmalion:latest"),
    ("hf.co/org/repo:Q4_K_M", "hf.co/org/repo:Q4_K_M"),
    ("localhost:5000/library/x:1", "localhost:5000/library/x:1"),
    ("https://example.com/ns/m:t", "example.com/ns/m:t"),
    ("_private/x_y", "_private/x_y:latest"),
])
def test_names_valid_and_shortest(od, text, shortest):
    name = od.Name.parse(text)
    assert name.is_valid() and name.shortest() == shortest


@pytest.mark.parametrize("text", [
    "", "hf.co/repo", "llama3.2:", ":tag", "a/b/c/d", "-model", "mo del", "ns.x/model",
    "m" * 81, "model:" + "t" * 81, "h" * 351 + "/ns/m", "model:ta:g", "a//b",
])
def test_names_invalid(od, text):
    assert not od.Name.parse(text).is_valid()


def test_name_lengths_at_the_limit_are_valid(od):
    assert od.Name.parse("m" * 80 + ":" + "t" * 80).is_valid()
    assert od.Name.parse("h" * 350 + "/ns/m").is_valid()
    assert od.Name.parse("llama3.2").full() == "registry.ollama.ai/library/llama3.2:latest"


# ------------------------------------------------------------------ embed, embeddings

def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_embed_normalised_deterministic_dimension(double):
    double.pull("nomic-embed-text")
    double.pull("all-minilm")
    body = {"model": "nomic-embed-text", "input": ["the cat sat on the mat", "a cat on a mat", "quantum chromodynamics"]}
    first = double.post("/api/embed", body).json()
    second = double.post("/api/embed", body).json()
    assert first["embeddings"] == second["embeddings"]
    assert first["model"] == "nomic-embed-text"
    assert first["prompt_eval_count"] > 0 and first["total_duration"] > 0 and "load_duration" in first
    assert [len(v) for v in first["embeddings"]] == [768, 768, 768]
    for vector in first["embeddings"]:
        assert abs(math.sqrt(sum(x * x for x in vector)) - 1.0) < 1e-6
    cat, cat2, physics = first["embeddings"]
    assert cosine(cat, cat2) > cosine(cat, physics)
    single = double.post("/api/embed", {"model": "all-minilm", "input": "hello"}).json()
    assert len(single["embeddings"]) == 1 and len(single["embeddings"][0]) == 384


def test_embed_errors_and_empty_input(double):
    double.pull("all-minilm")
    missing = double.post("/api/embed", {"model": "ghost", "input": "x"})
    assert (missing.status_code, missing.json()) == (404, {"error": 'model "ghost" not found, try pulling it first'})
    for bad in (5, [1, 2], ["ok", None], {"a": "b"}):
        response = double.post("/api/embed", {"model": "all-minilm", "input": bad})
        assert (response.status_code, response.json()) == (400, {"error": "invalid input type"}), bad
    for empty in ("", [], None):
        body = {"model": "all-minilm"}
        if empty is not None:
            body["input"] = empty
        response = double.post("/api/embed", body)
        assert (response.status_code, response.json()) == (200, {"model": "all-minilm", "embeddings": []})
    assert [m["name"] for m in double.get("/api/ps").json()["models"]] == ["all-minilm:latest"]


def test_embeddings_legacy_not_normalised(double):
    double.pull("mxbai-embed-large")
    response = double.post("/api/embeddings", {"model": "mxbai-embed-large", "prompt": "hello world"})
    vector = response.json()["embedding"]
    assert len(vector) == 1024
    assert abs(math.sqrt(sum(x * x for x in vector)) - 1.0) > 0.1
    new = double.post("/api/embed", {"model": "mxbai-embed-large", "input": "hello world"}).json()["embeddings"][0]
    assert cosine(vector, new) == pytest.approx(1.0)
    empty = double.post("/api/embeddings", {"model": "mxbai-embed-large", "prompt": ""})
    assert (empty.status_code, empty.json()) == (200, {"embedding": []})
    missing = double.post("/api/embeddings", {"model": "ghost", "prompt": "x"})
    assert (missing.status_code, missing.json()) == (404, {"error": 'model "ghost" not found, try pulling it first'})


# ------------------------------------------------------------------ generate, ps

def test_generate_load_ps_unload(double):
    double.pull("llama3.2:1b")
    loaded = double.post("/api/generate", {"model": "llama3.2:1b"}).json()
    assert loaded["done"] is True and loaded["done_reason"] == "load" and loaded["model"] == "llama3.2:1b"
    (entry,) = double.get("/api/ps").json()["models"]
    assert set(entry) == {"name", "model", "size", "digest", "details", "expires_at", "size_vram", "context_length"}
    assert entry["name"] == entry["model"] == "llama3.2:1b"
    assert entry["digest"] == tags(double)[0]["digest"] and entry["size_vram"] == 0
    assert entry["context_length"] == 4096 and entry["details"]["family"] == "llama"
    unloaded = double.post("/api/generate", {"model": "llama3.2:1b", "keep_alive": 0}).json()
    assert unloaded["done"] is True and unloaded["done_reason"] == "unload"
    assert double.get("/api/ps").json() == {"models": []}


def test_ps_sorted_by_expiry_latest_first_and_forever(double):
    double.pull("llama3.2:1b")
    double.pull("qwen2.5:0.5b")
    double.post("/api/generate", {"model": "qwen2.5:0.5b", "keep_alive": "1m"})
    double.post("/api/generate", {"model": "llama3.2:1b", "keep_alive": -1})
    models = double.get("/api/ps").json()["models"]
    assert [m["name"] for m in models] == ["llama3.2:1b", "qwen2.5:0.5b"]
    assert models[0]["expires_at"] > "2200"
    double.post("/api/generate", {"model": "qwen2.5:0.5b", "keep_alive": "1s"})
    assert wait_for(lambda: [m["name"] for m in double.get("/api/ps").json()["models"]] == ["llama3.2:1b"], 4)


def test_generate_prompt_is_a_deterministic_stop(double):
    double.pull("qwen2.5:0.5b")
    body = {"model": "qwen2.5:0.5b", "prompt": "why is the sky blue?", "stream": False}
    first = double.post("/api/generate", body).json()
    assert first["done"] is True and first["done_reason"] == "stop" and first["response"]
    assert double.post("/api/generate", body).json()["response"] == first["response"]
    streamed = [json.loads(line) for line in double.http.post(
        double.url + "/api/generate", json={"model": "qwen2.5:0.5b", "prompt": "why is the sky blue?"},
        stream=True, timeout=10).iter_lines() if line]
    assert "".join(part["response"] for part in streamed) == first["response"]
    assert streamed[-1]["done"] is True and streamed[-1]["done_reason"] == "stop"


def test_generate_errors_never_auto_pull(double):
    response = double.post("/api/generate", {"model": "llama3.2"})
    assert (response.status_code, response.json()) == (404, {"error": "model 'llama3.2' not found"})
    assert double.stats()["manifest_requests"] == 0 and tags(double) == []
    for bad in ("", "hf.co/repo"):
        response = double.post("/api/generate", {"model": bad})
        assert (response.status_code, response.json()) == (404, {"error": "model '%s' not found" % bad})
    double.pull("all-minilm")
    response = double.post("/api/generate", {"model": "all-minilm", "prompt": "hi"})
    assert response.status_code == 400 and "does not support generate" in response.json()["error"]


def test_delete_does_not_unload(double):
    double.pull("llama3.2:1b")
    double.post("/api/generate", {"model": "llama3.2:1b"})
    double.delete("llama3.2:1b")
    assert [m["name"] for m in double.get("/api/ps").json()["models"]] == ["llama3.2:1b"]


def test_keep_alive_env_and_bad_request_value(start_double):
    double = start_double(env={"OLLAMA_KEEP_ALIVE": "-1"})
    double.pull("all-minilm")
    double.post("/api/embed", {"model": "all-minilm", "input": "x"})
    assert double.get("/api/ps").json()["models"][0]["expires_at"] > "2200"
    response = double.post("/api/embed", {"model": "all-minilm", "input": "x", "keep_alive": "300"})
    assert response.status_code == 400 and "missing unit" in response.json()["error"]


# ------------------------------------------------------------------ Host header

@pytest.mark.parametrize("host, status", [
    ("evil.example.com", 403), ("8.8.8.8", 403), ("localhost:11434", 200), ("127.0.0.1", 200),
    ("10.1.2.3:80", 200), ("192.168.1.5", 200), ("box.local", 200), ("svc.internal:8080", 200), ("[::1]:11434", 200),
])
def test_non_local_host_header_is_403_on_loopback(double, host, status):
    response = double.get("/api/version", headers={"Host": host})
    assert response.status_code == status
    if status == 403:
        assert response.content == b""


def test_any_host_header_allowed_when_bound_to_all_interfaces(start_double):
    double = start_double(args=("--host", "0.0.0.0"))
    assert double.get("/api/version", headers={"Host": "evil.example.com"}).status_code == 200


# ------------------------------------------------------------------ CLI

def run_cli(*args, host: str = "", via_shim: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA")}
    if host:
        env["OLLAMA_HOST"] = host
    command = [str(SHIM)] if via_shim else [sys.executable, str(DOUBLE_PY)]
    return subprocess.run(command + list(args), env=env, capture_output=True, text=True, timeout=30, check=False)


def test_list_cli_prints_the_table(double):
    double.pull("all-minilm")
    double.pull("llama3.2:1b")
    host = double.url.replace("http://", "")
    result = run_cli("list", host=host, via_shim=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    rows = {line.split()[0]: line for line in lines[1:]}
    digest = {m["name"]: m["digest"] for m in tags(double)}
    assert set(rows) == {"all-minilm:latest", "llama3.2:1b"}
    assert rows["llama3.2:1b"].split()[1] == digest["llama3.2:1b"][:12]
    assert "1.0 MB" in rows["llama3.2:1b"] and "ago" in rows["llama3.2:1b"]
    port = host.split(":")[1]
    assert run_cli("ls", host="0.0.0.0:" + port).returncode == 0
    again = run_cli("ls", host="http://127.0.0.1:" + port).stdout
    # MODIFIED may tick over between the two runs; the rest must match
    assert [line.split()[:4] for line in again.splitlines()] == [line.split()[:4] for line in lines]


def test_list_cli_fails_without_server():
    result = run_cli("list", host="127.0.0.1:9")
    assert result.returncode != 0
    assert result.stderr.startswith("Error: could not connect to ollama server")


def test_version_cli_always_exits_zero(double):
    result = run_cli("--version", host=double.url)
    assert (result.returncode, result.stdout) == (0, "ollama version is 0.33.0\n")
    down = run_cli("-v", host="127.0.0.1:9", via_shim=True)
    assert down.returncode == 0 and "client version is 0.33.0" in down.stdout


def test_pull_rm_ps_cli(double):
    host = double.url
    result = run_cli("pull", "all-minilm", host=host)
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "success"
    failed = run_cli("pull", "ghost", host=host)
    assert failed.returncode == 1 and failed.stderr == "Error: pull model manifest: file does not exist\n"
    double.post("/api/embed", {"model": "all-minilm"})
    assert "100% CPU" in run_cli("ps", host=host).stdout
    assert run_cli("rm", "all-minilm", host=host).stdout == "deleted 'all-minilm'\n"
    gone = run_cli("rm", "all-minilm", host=host)
    assert gone.returncode == 1 and gone.stderr == "Error: model 'all-minilm' not found\n"


def test_shim_without_args_prints_help():
    result = run_cli(via_shim=True)
    assert result.returncode == 0 and "serve" in result.stdout


def test_shim_is_the_only_executable():
    assert os.access(SHIM, os.X_OK)
    assert SHIM.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
    assert not os.access(DOUBLE_PY, os.X_OK)
    assert not DOUBLE_PY.read_text(encoding="utf-8").startswith("#!")


def test_serve_on_a_busy_port_fails_like_ollama(double, tmp_path):
    port = double.url.rsplit(":", 1)[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA")}
    env["OLLAMA_HOST"] = "127.0.0.1:" + port
    result = subprocess.run([sys.executable, str(DOUBLE_PY), "serve", "--models", str(tmp_path / "m")], env=env,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert "Error: listen tcp 127.0.0.1:%s: bind: address already in use" % port in result.stderr


def test_sigterm_stops_the_server_cleanly(double):
    double.proc.terminate()
    assert double.proc.wait(timeout=5) == 0


# ------------------------------------------------------------------ helpers in-process

@pytest.mark.parametrize("value, expected", [
    (None, ("http", "127.0.0.1", 11434)), ("", ("http", "127.0.0.1", 11434)),
    ("0.0.0.0", ("http", "0.0.0.0", 11434)), ("0.0.0.0:11434", ("http", "0.0.0.0", 11434)),
    (":8080", ("http", "", 8080)), ("http://example.com", ("http", "example.com", 80)),
    ("http://10.0.0.1:9999", ("http", "10.0.0.1", 9999)), ("https://h", ("https", "h", 443)),
    ("[::1]:7000", ("http", "::1", 7000)), ("example.com:99999", ("http", "example.com", 11434)),
])
def test_ollama_host_parsing(od, value, expected):
    assert od.parse_ollama_host(value) == expected


@pytest.mark.parametrize("value, ns", [
    ("5m", 300 * 10 ** 9), ("1h30m", 5400 * 10 ** 9), ("1.5s", 1_500_000_000), ("0", 0), (0, 0), (30, 30 * 10 ** 9),
    ("-1m", 2 ** 63 - 1), (-1, 2 ** 63 - 1), (None, 7),
])
def test_keep_alive_values(od, value, ns):
    assert od.keep_alive_ns(value, 7) == ns


def test_go_formats(od):
    assert od.go_format_duration(300 * 10 ** 9) == "5m0s"
    assert od.go_format_duration(3600 * 10 ** 9) == "1h0m0s"
    assert od.human_bytes(2019393189) == "2.0 GB" and od.human_bytes(1_501_371) == "1.5 MB" and od.human_bytes(999) == "999 B"
    assert od.human_time(time.time() - 3 * 86400, time.time()) == "3 days ago"


# ------------------------------------------------------------------ the official client, unchanged

def test_official_ollama_client_works_unchanged(double):
    client = ollama.Client(host=double.url)
    assert client.list().models == []
    progress = list(client.pull("llama3.2:1b", stream=True))
    assert progress[0].status == "pulling manifest" and progress[-1].status == "success"
    assert any(p.digest and p.total for p in progress)
    assert client.pull("nomic-embed-text").status == "success"
    listed = {m.model: m for m in client.list().models}
    assert set(listed) == {"llama3.2:1b", "nomic-embed-text:latest"}
    assert listed["llama3.2:1b"].modified_at.tzinfo is not None and listed["llama3.2:1b"].size > 0
    shown = client.show("llama3.2:1b")
    assert shown.details.family == "llama" and "completion" in shown.capabilities
    assert shown.modelinfo["llama.embedding_length"] == 2048
    embedded = client.embed(model="nomic-embed-text", input=["a", "b"])
    assert len(embedded.embeddings) == 2 and len(embedded.embeddings[0]) == 768
    assert len(client.embeddings(model="nomic-embed-text", prompt="a").embedding) == 768
    answer = client.generate(model="llama3.2:1b", prompt="hello")
    assert answer.done and answer.done_reason == "stop" and answer.response
    streamed = list(client.generate(model="llama3.2:1b", prompt="hello", stream=True))
    assert "".join(part.response for part in streamed) == answer.response
    running = client.ps().models
    assert {m.model for m in running} == {"llama3.2:1b", "nomic-embed-text:latest"}
    assert all(m.expires_at is not None for m in running)
    assert client.copy("llama3.2:1b", "mine/llama:v1").status == "success"
    assert client.delete("mine/llama:v1").status == "success"
    with pytest.raises(ollama.ResponseError) as missing:
        client.show("ghost")
    assert missing.value.status_code == 404 and "not found" in missing.value.error
    with pytest.raises(ollama.ResponseError) as unknown:
        list(client.pull("ghost", stream=True))
    assert unknown.value.error == "pull model manifest: file does not exist"
    with pytest.raises(ollama.ResponseError) as unknown_blocking:
        client.pull("ghost")
    assert unknown_blocking.value.status_code == 500
    with pytest.raises(ollama.ResponseError):
        client.delete("ghost")
    assert client.generate(model="llama3.2:1b", keep_alive=0).done_reason == "unload"
