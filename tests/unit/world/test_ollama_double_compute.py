"""The Ollama double's startup compute discovery (gpu auto): what its container was given decides,
with Ollama v0.33's floors, and the ``inference compute`` lines and /api/ps size_vram follow.

A fake root (OLLAMA_DOUBLE_ROOT) stands for the container: /dev/nvidia<N> as empty files (what the
stand-in hook makes where mknod is refused) and /usr/bin/nvidia-smi shaped like the fake that
molecule/nvidia/prepare.yml puts on its hosts (the driver query first, every other query answered
with the GPU rows), so the double is proven against the nvidia-smi the scenarios really have.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

FIRST_UUID = "GPU-5e1f4a5b-9c2f-3d1e-8a7b-6c5d4e3f2a10"
SECOND_UUID = "GPU-1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"
RTX4090 = [
    "0, %s, NVIDIA GeForce RTX 4090, 24564, 8.9, 00000000:01:00.0, [N/A]" % FIRST_UUID,
    "1, %s, NVIDIA GeForce RTX 4090, 24564, 8.9, 00000000:02:00.0, [N/A]" % SECOND_UUID,
]
PASCAL = ["0, GPU-7c1d9e2f-4a3b-5c6d-8e9f-0a1b2c3d4e5f, NVIDIA GeForce GTX 1080, 8192, 6.1, 00000000:01:00.0, [N/A]"]
KEPLER = ["0, GPU-0a0b0c0d-1111-2222-3333-444455556666, Tesla K80, 11441, 3.7, 00000000:04:00.0, [N/A]"]


def nvidia_root(tmp_path: Path, rows: list[str], driver: str = "550.54.14", nodes=(0, 1), smi: bool = True) -> Path:
    """A container's view: /dev/nvidiactl, /dev/nvidia<N> for NODES, and nvidia-smi answering with ROWS."""
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    (root / "dev" / "nvidiactl").write_text("")
    for node in nodes:
        (root / "dev" / ("nvidia%d" % node)).write_text("")
    if smi:
        path = root / "usr" / "bin" / "nvidia-smi"
        path.parent.mkdir(parents=True)
        path.write_text("#!/bin/sh\n"
                        "# TEST FAKE, shaped like molecule/nvidia/prepare.yml's\n"
                        'case "$*" in\n'
                        "  *--query-gpu=driver_version*) for r in %s; do echo '%s'; done ;;\n"
                        "  *--query-gpu=*)\n%s    ;;\n"
                        "  *) echo 'nvidia-smi (TEST FAKE)' ;;\n"
                        "esac\n" % (" ".join(str(i) for i in range(len(rows))), driver,
                                    "".join("    echo '%s'\n" % row for row in rows)))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return root


def amd_root(tmp_path: Path, renders=("renderD128",)) -> Path:
    root = tmp_path / "root"
    (root / "dev" / "dri").mkdir(parents=True)
    (root / "dev" / "kfd").write_text("")
    for render in renders:
        (root / "dev" / "dri" / render).write_text("")
    return root


def compute_lines(log: str) -> list[str]:
    """The discovery lines of a startup log, without their time stamps."""
    return [re.sub(r"^time=\S+ ", "", line) for line in log.splitlines()
            if 'msg="inference compute"' in line or "source=runner.go" in line]


def cuda_line(gpu_id, filter_id, pci, driver="12.4", libdirs="ollama,cuda_v12", name="NVIDIA GeForce RTX 4090",
              compute="8.9", total="24.0 GiB", available="23.5 GiB") -> str:
    return ('level=INFO source=types.go:60 msg="inference compute" id=%s filter_id=%s library=CUDA compute=%s '
            'name=CUDA%s description="%s" libdirs=%s driver=%s pci_id=%s type=discrete total="%s" available="%s"'
            % (gpu_id, filter_id, compute, gpu_id, name, libdirs, driver, pci, total, available))


CPU_LINE = ('level=INFO source=types.go:60 msg="inference compute" id=cpu library=cpu compute="" name=cpu '
            'description=cpu libdirs=ollama driver="" pci_id="" type="" total="15.6 GiB" available="14.9 GiB"')


def loaded(double, model: str) -> dict:
    double.pull(model)
    assert double.post("/api/generate", {"model": model}).status_code == 200
    (entry,) = double.get("/api/ps").json()["models"]
    return entry


# ------------------------------------------------------------------ NVIDIA, end to end


def test_given_gpu_is_cuda_with_its_nvidia_smi_facts_and_the_model_on_it(start_double, tmp_path):
    """Only /dev/nvidia1 given (nvidia-smi lists both host GPUs): one CUDA GPU, the second's facts."""
    double = start_double(env={"OLLAMA_DOUBLE_ROOT": str(nvidia_root(tmp_path, RTX4090, nodes=(1,)))})
    assert compute_lines(double.log()) == [cuda_line(0, 0, "0000:02:00.0")]
    entry = loaded(double, "qwen2.5:0.5b")
    assert entry["size_vram"] == entry["size"] > 0
    assert double.get("/_double/faults").json()["gpu"] == "auto"


def test_every_given_gpu_gets_a_line(start_double, tmp_path):
    double = start_double(env={"OLLAMA_DOUBLE_ROOT": str(nvidia_root(tmp_path, RTX4090, driver="580.82.07"))})
    assert compute_lines(double.log()) == [
        cuda_line(0, 0, "0000:01:00.0", driver="13.0", libdirs="ollama,cuda_v13"),
        cuda_line(1, 1, "0000:02:00.0", driver="13.0", libdirs="ollama,cuda_v13"),
    ]


def test_driver_too_old_for_pascal_warns_and_runs_on_the_cpu(start_double, tmp_path):
    """Compute capability 6.1 needs driver 570: 535 drops it with a WARN line, and models sit on the CPU."""
    double = start_double(env={"OLLAMA_DOUBLE_ROOT": str(nvidia_root(tmp_path, PASCAL, driver="535.104.05", nodes=(0,)))})
    assert compute_lines(double.log()) == [
        'level=WARN source=runner.go:153 msg="NVIDIA driver too old" id=GPU-7c1d9e2f-4a3b-5c6d-8e9f-0a1b2c3d4e5f '
        'description="NVIDIA GeForce GTX 1080" compute=6.1 pci_id=0000:01:00.0 driver=535.104.05 minimum_driver=570',
        CPU_LINE,
    ]
    assert loaded(double, "qwen2.5:0.5b")["size_vram"] == 0


def test_partial_offload_when_the_model_is_bigger_than_free_vram(start_double, tmp_path):
    rows = ["0, %s, NVIDIA T400, 513, 7.5, 00000000:01:00.0, [N/A]" % FIRST_UUID]
    double = start_double(env={"OLLAMA_DOUBLE_ROOT": str(nvidia_root(tmp_path, rows, nodes=(0,)))})
    entry = loaded(double, "llama3.2")
    assert entry["size_vram"] == 1024 * 1024 < entry["size"]


def test_gpu_knob_still_forces_cpu_over_given_gpus(start_double, tmp_path):
    double = start_double(env={"OLLAMA_DOUBLE_GPU": "cpu", "OLLAMA_DOUBLE_ROOT": str(nvidia_root(tmp_path, RTX4090))})
    assert compute_lines(double.log()) == [CPU_LINE]
    assert loaded(double, "qwen2.5:0.5b")["size_vram"] == 0


def test_nothing_given_is_cpu_and_size_vram_zero(double):
    assert compute_lines(double.log()) == [CPU_LINE]
    assert loaded(double, "qwen2.5:0.5b")["size_vram"] == 0


# ------------------------------------------------------------------ the decision, in-process


def discover(od, root: Path, **env):
    compute = od.discover_compute(env=env, root=str(root))
    return compute.library, [(g["id"], g["filter_id"], g["pci_id"]) for g in compute.gpus], \
        [(level, msg) for level, msg, dummy in compute.warnings]


@pytest.mark.parametrize(("visible", "expected"), [
    (SECOND_UUID, [("0", SECOND_UUID, "0000:02:00.0")]),
    ("GPU-1f2e", [("0", "GPU-1f2e", "0000:02:00.0")]),
    ("1,0", [("0", "1", "0000:02:00.0"), ("1", "0", "0000:01:00.0")]),
    ("0,7,1", [("0", "0", "0000:01:00.0")]),  # CUDA stops at the first id it does not know
])
def test_cuda_visible_devices_selects(od, tmp_path, visible, expected):
    assert discover(od, nvidia_root(tmp_path, RTX4090), CUDA_VISIBLE_DEVICES=visible) == ("CUDA", expected, [])


@pytest.mark.parametrize("visible", ["-1", "", " "])
def test_cuda_visible_devices_none_is_cpu(od, tmp_path, visible):
    assert discover(od, nvidia_root(tmp_path, RTX4090), CUDA_VISIBLE_DEVICES=visible) == ("cpu", [], [])


@pytest.mark.parametrize(("rows", "driver", "library", "warning"), [
    (RTX4090[:1], "550.54.14", "CUDA", None),
    (RTX4090[:1], "545.29.06", "cpu", "NVIDIA driver too old"),
    (PASCAL, "560.35.03", "cpu", "NVIDIA driver too old"),
    (PASCAL, "570.124.06", "CUDA", None),
    (KEPLER, "580.82.07", "cpu", "CUDA GPU is too old"),
])
def test_ollama_floors(od, tmp_path, rows, driver, library, warning):
    found = discover(od, nvidia_root(tmp_path, rows, driver=driver, nodes=(0,)))
    assert found[0] == library
    assert found[2] == ([("WARN", warning)] if warning else [])


def test_floor_drops_one_gpu_and_keeps_the_other(od, tmp_path):
    rows = [PASCAL[0], RTX4090[1]]
    assert discover(od, nvidia_root(tmp_path, rows, driver="560.35.03")) == (
        "CUDA", [("0", "1", "0000:02:00.0")], [("WARN", "NVIDIA driver too old")])


def test_nodes_without_nvidia_smi_are_a_discovery_failure(od, tmp_path):
    assert discover(od, nvidia_root(tmp_path, RTX4090, smi=False)) == ("cpu", [], [("WARN", "failure during GPU discovery")])


def test_nvidia_smi_without_nodes_is_cpu(od, tmp_path):
    assert discover(od, nvidia_root(tmp_path, RTX4090, nodes=())) == ("cpu", [], [])


def test_pci_ids_as_ollama_logs_them(od):
    assert od.pci_id("00000000:0A:00.0") == "0000:0a:00.0"
    assert od.pci_id("0000:17:00.0") == "0000:17:00.0"


# ------------------------------------------------------------------ ROCm


def test_rocm_gpu_per_render_node(od, tmp_path):
    root = amd_root(tmp_path, ("renderD128", "renderD129"))
    compute = od.discover_compute(env={"OLLAMA_DOUBLE_ROCM_VRAM_MIB": "8192"}, root=str(root))
    assert compute.library == "ROCm"
    assert [(g["name"], g["compute"], g["total_mib"]) for g in compute.gpus] == [
        ("ROCm0", "gfx1030", 8192), ("ROCm1", "gfx1030", 8192)]


@pytest.mark.parametrize(("env", "library", "compute"), [
    ({"OLLAMA_DOUBLE_ROCM_GFX": "gfx1100"}, "ROCm", "gfx1100"),
    ({"OLLAMA_DOUBLE_ROCM_GFX": "gfx1034"}, "cpu", None),
    ({"OLLAMA_DOUBLE_ROCM_GFX": "gfx1034", "HSA_OVERRIDE_GFX_VERSION": "10.3.0"}, "ROCm", "gfx1030"),
    ({"OLLAMA_DOUBLE_ROCM_GFX": "gfx1034", "HSA_OVERRIDE_GFX_VERSION_0": "10.3.0"}, "ROCm", "gfx1030"),
    ({"HIP_VISIBLE_DEVICES": "-1"}, "cpu", None),
])
def test_rocm_targets_and_overrides(od, tmp_path, env, library, compute):
    found = od.discover_compute(env=env, root=str(amd_root(tmp_path)))
    assert found.library == library
    assert [g["compute"] for g in found.gpus] == ([compute] if compute else [])


def test_unsupported_gfx_logs_ollamas_warning(start_double, tmp_path):
    double = start_double(env={"OLLAMA_DOUBLE_ROOT": str(amd_root(tmp_path)), "OLLAMA_DOUBLE_ROCM_GFX": "gfx1034"})
    assert compute_lines(double.log()) == [
        'level=WARN source=runner.go:153 msg="amdgpu is not supported (supported types:[gfx908 gfx90a gfx942 gfx950 '
        'gfx1030 gfx1100 gfx1101 gfx1102 gfx1150 gfx1151 gfx1200 gfx1201])" gpu_type=gfx1034 gpu=0 library=ROCm',
        'level=INFO source=runner.go:153 msg="See https://github.com/ollama/ollama/blob/main/docs/gpu.md#overrides '
        'for HSA_OVERRIDE_GFX_VERSION usage"',
        CPU_LINE,
    ]


def test_rocm_line(start_double, tmp_path):
    double = start_double(env={"OLLAMA_DOUBLE_ROOT": str(amd_root(tmp_path))})
    assert compute_lines(double.log()) == [
        'level=INFO source=types.go:60 msg="inference compute" id=0 filter_id=0 library=ROCm compute=gfx1030 name=ROCm0 '
        'description="AMD Radeon RX 6800 XT" libdirs=ollama,rocm driver=60342.13 pci_id=0000:03:00.0 type=discrete '
        'total="16.0 GiB" available="15.5 GiB"']
    entry = loaded(double, "qwen2.5:0.5b")
    assert entry["size_vram"] == entry["size"]
