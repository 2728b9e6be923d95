"""benchmarks/gpu_check.sh: on a machine without CUDA (CI) it must fail at once, clearly."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_without_cuda_fails_in_one_line_and_writes_nothing(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: error: no CUDA device"), proc.stderr
    assert not (tmp_path / "out" / "gpu_check.json").exists()


def test_a_failing_section_is_recorded_and_the_others_run(tmp_path, monkeypatch):
    """Each section is isolated: errors become one-line records, the JSON is still written."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "stub GPU")
    calls = []

    def boom(*a):
        calls.append("inference")
        raise RuntimeError("CUDA error: out of memory\nsecond line")

    def ok(budget):
        calls.append("ddp")
        return {"returncode": 0, "budget": budget}

    monkeypatch.setattr(gpu_check, "inference", boom)
    monkeypatch.setattr(gpu_check, "training", lambda: {"speedup_bf16": 2.0})
    monkeypatch.setattr(gpu_check, "ddp", ok)
    monkeypatch.setattr(gpu_check, "simulate", lambda budget: (_ for _ in ()).throw(
        subprocess.TimeoutExpired("simulate", budget)))
    out = tmp_path / "r.json"
    rc = gpu_check.main(["--out", str(out), "--budget", "100"])
    res = json.loads(out.read_text())
    assert rc == 1  # not every section passed
    s = res["sections"]
    assert s["inference"]["status"] == "error"
    assert s["inference"]["reason"] == "RuntimeError: CUDA error: out of memory second line"
    assert s["training"]["status"] == "ok" and s["training"]["speedup_bf16"] == 2.0
    assert s["ddp"]["status"] == "ok" and s["ddp"]["budget"] <= 25.0
    assert s["simulate"]["status"] == "timeout"
    assert res["device"] == "stub GPU" and calls == ["inference", "ddp"]
