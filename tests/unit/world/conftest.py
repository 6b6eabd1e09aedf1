"""Fixtures that run the Ollama API test double as a subprocess, the way images run it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[3]
DOUBLE_DIR = REPO / "tests" / "world" / "ollama_double"
DOUBLE_PY = DOUBLE_DIR / "ollama_double.py"
SHIM = DOUBLE_DIR / "ollama"
# What selects GPUs for Ollama: never taken from the environment the tests run in.
GPU_ENV = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "HSA_OVERRIDE_GFX_VERSION")


class RunningDouble:
    """One `ollama_double.py serve --port 0` process and helpers to talk to it."""

    def __init__(self, proc: subprocess.Popen, url: str, models: Path, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.models = models
        self.log_path = log_path
        self.http = requests.Session()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, body=None, **kwargs) -> requests.Response:
        if body is not None:
            kwargs["json"] = body
        return self.http.post(self.url + path, timeout=30, **kwargs)

    def delete(self, model: str) -> requests.Response:
        return self.http.delete(self.url + "/api/delete", json={"model": model}, timeout=30)

    def pull_lines(self, model: str, **extra) -> list:
        """Every NDJSON line of a streamed pull, parsed."""
        response = self.http.post(self.url + "/api/pull", json={"model": model, **extra}, stream=True, timeout=60)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/x-ndjson"
        return [json.loads(line) for line in response.iter_lines() if line]

    def pull(self, model: str) -> None:
        response = self.post("/api/pull", {"model": model, "stream": False})
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "success"}

    def faults(self, **changes) -> dict:
        response = self.post("/_double/faults", changes)
        assert response.status_code == 200, response.text
        return response.json()

    def stats(self) -> dict:
        return self.get("/_double/stats").json()

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def spawn_double(models: Path, log_path: Path, env: dict | None = None, args: tuple = ()) -> RunningDouble:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA") and k not in GPU_ENV}
    # The double decides its compute from /dev and nvidia-smi (OLLAMA_DOUBLE_ROOT): an empty
    # root unless a test gives one, so that no test depends on this machine's devices.
    empty_root = log_path.parent / "empty-root"
    empty_root.mkdir(exist_ok=True)
    full_env["OLLAMA_DOUBLE_ROOT"] = str(empty_root)
    full_env.update(env or {})
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, str(DOUBLE_PY), "serve", "--port", "0", "--models", str(models), *args],
            stdout=subprocess.PIPE, stderr=log, env=full_env, text=True)
    line = proc.stdout.readline().strip()
    if not line.startswith("http://"):
        proc.kill()
        raise AssertionError("double did not print its URL: %r\n%s" % (line, log_path.read_text(encoding="utf-8")))
    return RunningDouble(proc, line, models, log_path)


@pytest.fixture
def start_double(tmp_path):
    """Factory: start_double(env=..., models=...) -> RunningDouble; all are stopped afterwards."""
    started = []

    def _start(env: dict | None = None, models: Path | None = None, args: tuple = ()) -> RunningDouble:
        index = len(started)
        models = models or tmp_path / ("models%d" % index)
        double = spawn_double(models, tmp_path / ("double%d.log" % index), env, args)
        started.append(double)
        return double

    yield _start
    for double in started:
        double.stop()


@pytest.fixture
def double(start_double) -> RunningDouble:
    return start_double()


@pytest.fixture(scope="session")
def od():
    """The double's module imported in-process, for its pure helpers (name rules, durations)."""
    spec = importlib.util.spec_from_file_location("ollama_double", DOUBLE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
