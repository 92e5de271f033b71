"""install_plugins.py / r1track install against skeleton checkouts that mirror the real layouts."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1track.commands import install as cmd
from r1track.install import (
    MANIFEST_NAME,
    TARGETS,
    FileMap,
    InstallError,
    TargetSpec,
    apply_plan,
    plan_install,
    plan_uninstall,
    r1track_import_check,
)

REPO = Path(__file__).resolve().parents[1]

USER_ENTRY = {"alpaca_en_demo": {"file_name": "alpaca_en_demo.json"}}


def make_source(root: Path) -> Path:
    """A stand-in r1track checkout holding every plugin source the real TARGETS name."""
    files = {
        "examples/r1_track_lora_sft.yaml": "model_name_or_path: Qwen/Qwen2.5-VL-3B-Instruct\ndataset_dir: datasets_info\ndataset: r1_track\n",
        "examples/r1_track_lora_merge.yaml": "export_dir: out\n",
        "plugins/llamafactory/README.md": "llamafactory notes\n",
        "datasets_info/dataset_info.json": json.dumps({"r1_track": {"file_name": "r1track/sharegpt.json"}, "r1_track_hub": {"hf_hub_url": "WangBiao/R1-Track-Data-ShareGPT"}}),
        "plugins/easyr1/reward_function/r1track.py": "REWARD_TYPE = 'batch'\n",
        "plugins/easyr1/format_prompt/r1track.jinja": "{{ content }}\n",
        "plugins/easyr1/format_prompt/r1track_think.jinja": "think {{ content }}\n",
        "plugins/easyr1/examples/config.yaml": "data: {}\n",
        "plugins/easyr1/examples/qwen2_5_vl_3b_r1track_grpo.sh": "#!/bin/bash\necho hi\n",
        "plugins/pytracking/tracker/r1track/__init__.py": "def get_tracker_class():\n    return None\n",
        "plugins/pytracking/tracker/r1track/r1track.py": "class R1Track: pass\n",
        "plugins/pytracking/parameter/r1track/default.py": "def parameters():\n    return None\n",
        "plugins/pytracking/parameter/r1track/__pycache__/default.cpython-311.pyc": "junk",
    }
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def make_llamafactory(root: Path) -> Path:
    (root / "src/llamafactory").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "data/dataset_info.json").write_text(json.dumps(USER_ENTRY, indent=2))
    (root / "examples").mkdir()
    return root


def make_easyr1(root: Path) -> Path:
    (root / "verl").mkdir(parents=True)
    (root / "examples/reward_function").mkdir(parents=True)
    (root / "examples/reward_function/math.py").write_text("def compute_score(x): pass\n")
    (root / "examples/config.yaml").write_text("data: {}\n")
    return root


def make_pytracking(root: Path, local_py: bool = False) -> Path:
    (root / "pytracking/tracker/base").mkdir(parents=True)
    (root / "pytracking/tracker/base/basetracker.py").write_text("class BaseTracker: pass\n")
    (root / "pytracking/parameter").mkdir(parents=True)
    (root / "pytracking/evaluation").mkdir(parents=True)
    if local_py:
        (root / "pytracking/evaluation/local.py").write_text("# mine\n")
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(root))] = (p.is_symlink() and os.readlink(p), p.is_file() and not p.is_symlink() and p.read_bytes(), st.st_mtime_ns)
    return out


@pytest.fixture
def src(tmp_path):
    return make_source(tmp_path / "r1track")


def install(spec_name, target, src, **kw):
    plan = plan_install(TARGETS[spec_name], target, source=src, **kw)
    apply_plan(plan)
    return plan


def test_llamafactory_install_merges_and_copies(tmp_path, src):
    lf = make_llamafactory(tmp_path / "LLaMA-Factory")
    plan = install("llamafactory", lf, src)
    assert not plan.conflicts
    info = json.loads((lf / "data/dataset_info.json").read_text())
    assert info["alpaca_en_demo"] == USER_ENTRY["alpaca_en_demo"]  # user's entry kept
    assert info["r1_track"] == {"file_name": "r1track/sharegpt.json"} and "r1_track_hub" in info
    sft = (lf / "examples/r1track/r1_track_lora_sft.yaml").read_text()
    assert "dataset_dir: data\n" in sft and "datasets_info" not in sft  # points at LLaMA-Factory's own data/
    assert (lf / "examples/r1track/README.md").is_file()
    manifest = json.loads((lf / MANIFEST_NAME).read_text())
    assert set(manifest["files"]) == {"examples/r1track/r1_track_lora_sft.yaml", "examples/r1track/r1_track_lora_merge.yaml", "examples/r1track/README.md"}
    assert set(manifest["entries"]["data/dataset_info.json"]) == {"r1_track", "r1_track_hub"}


@pytest.mark.parametrize("name,make", [("llamafactory", make_llamafactory), ("easyr1", make_easyr1), ("pytracking", make_pytracking)])
def test_reinstall_changes_nothing_and_says_so(tmp_path, src, name, make, capsys, monkeypatch):
    target = make(tmp_path / name)
    install(name, target, src)
    before = snapshot(target)
    plan = plan_install(TARGETS[name], target, source=src)
    assert not plan.changes
    apply_plan(plan)
    assert snapshot(target) == before
    monkeypatch.setenv("R1TRACK_HOME", str(src))
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    assert cmd.run(p.parse_args([f"--{name}", str(target)])) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert snapshot(target) == before


def test_modify_then_uninstall_keeps_the_users_change(tmp_path, src):
    lf = make_llamafactory(tmp_path / "lf")
    before = snapshot(lf)
    install("llamafactory", lf, src)
    edited = lf / "examples/r1track/r1_track_lora_merge.yaml"
    edited.write_text("export_dir: mine\n")
    plan = plan_uninstall(TARGETS["llamafactory"], lf)
    kinds = {(a.kind, a.path) for a in plan.actions}
    assert ("keep", "examples/r1track/r1_track_lora_merge.yaml") in kinds
    assert ("remove", "examples/r1track/r1_track_lora_sft.yaml") in kinds
    apply_plan(plan)
    assert edited.read_text() == "export_dir: mine\n"
    assert not (lf / "examples/r1track/r1_track_lora_sft.yaml").exists()
    assert json.loads((lf / "data/dataset_info.json").read_text()) == USER_ENTRY
    assert not (lf / MANIFEST_NAME).exists()
    # everything else is back as it was
    after = snapshot(lf)
    for rel in before:
        if rel != "data/dataset_info.json":
            assert after[rel][:2] == before[rel][:2]


def test_full_uninstall_restores_the_original_tree(tmp_path, src):
    pt = make_pytracking(tmp_path / "pytracking")
    before = {k: v[:2] for k, v in snapshot(pt).items()}
    install("pytracking", pt, src)
    assert (pt / "pytracking/tracker/r1track/__init__.py").is_file()
    assert not (pt / "pytracking/parameter/r1track/__pycache__").exists()
    apply_plan(plan_uninstall(TARGETS["pytracking"], pt))
    assert {k: v[:2] for k, v in snapshot(pt).items()} == before


def test_dry_run_touches_nothing_and_prints_every_action(tmp_path, src, capsys, monkeypatch):
    monkeypatch.setenv("R1TRACK_HOME", str(src))
    er = make_easyr1(tmp_path / "EasyR1")
    before = snapshot(er)
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    assert cmd.run(p.parse_args(["--easyr1", str(er), "--dry-run"])) == 0
    out = capsys.readouterr().out
    assert snapshot(er) == before
    for rel in ("examples/reward_function/r1track.py", "examples/format_prompt/r1track_think.jinja", "examples/r1track/config.yaml"):
        assert f"would create   {rel}" in out


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_wrong_targets_are_refused(tmp_path, src, name):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InstallError, match="does not look like"):
        plan_install(TARGETS[name], empty, source=src)
    with pytest.raises(InstallError, match="not a directory"):
        plan_install(TARGETS[name], tmp_path / "missing", source=src)
    # another framework's layout is refused too
    other = {"llamafactory": make_easyr1, "easyr1": make_pytracking, "pytracking": make_llamafactory}[name](tmp_path / "other")
    with pytest.raises(InstallError):
        plan_install(TARGETS[name], other, source=src)


def test_path_traversal_through_names_is_refused(tmp_path, src):
    lf = make_llamafactory(tmp_path / "lf")
    for bad in ("../escape.yaml", "/etc/passwd", "examples/../../escape.yaml"):
        spec = TargetSpec("llamafactory", "LLaMA-Factory", TARGETS["llamafactory"].markers, (FileMap("examples/r1_track_lora_merge.yaml", bad),))
        with pytest.raises(InstallError, match="unsafe"):
            plan_install(spec, lf, source=src)
    assert not (tmp_path / "escape.yaml").exists()


def test_path_traversal_through_symlinks_is_refused(tmp_path, src):
    outside = tmp_path / "outside"
    outside.mkdir()
    pt = make_pytracking(tmp_path / "pt")
    (pt / "pytracking/tracker/r1track").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InstallError, match="outside"):
        plan_install(TARGETS["pytracking"], pt, source=src)
    assert list(outside.iterdir()) == []


def test_dataset_info_conflict_needs_force_and_uninstall_restores(tmp_path, src):
    lf = make_llamafactory(tmp_path / "lf")
    mine = {"file_name": "my_own.json"}
    (lf / "data/dataset_info.json").write_text(json.dumps({**USER_ENTRY, "r1_track": mine}))
    plan = install("llamafactory", lf, src)
    assert [a.detail for a in plan.conflicts] and "r1_track" in plan.conflicts[0].detail
    info = json.loads((lf / "data/dataset_info.json").read_text())
    assert info["r1_track"] == mine and "r1_track_hub" in info
    plan = install("llamafactory", lf, src, force=True)
    assert not plan.conflicts
    assert json.loads((lf / "data/dataset_info.json").read_text())["r1_track"] == {"file_name": "r1track/sharegpt.json"}
    apply_plan(plan_uninstall(TARGETS["llamafactory"], lf))
    assert json.loads((lf / "data/dataset_info.json").read_text()) == {**USER_ENTRY, "r1_track": mine}


def test_users_file_is_never_clobbered_without_force(tmp_path, src):
    er = make_easyr1(tmp_path / "er")
    (er / "examples/reward_function/r1track.py").write_text("# my own reward\n")
    plan = install("easyr1", er, src)
    assert [a.path for a in plan.conflicts] == ["examples/reward_function/r1track.py"]
    assert (er / "examples/reward_function/r1track.py").read_text() == "# my own reward\n"
    assert (er / "examples/format_prompt/r1track.jinja").is_file()
    install("easyr1", er, src, force=True)
    assert (er / "examples/reward_function/r1track.py").read_text() == "REWARD_TYPE = 'batch'\n"
    assert (er / "examples/reward_function/r1track.py.r1track-backup").read_text() == "# my own reward\n"
    apply_plan(plan_uninstall(TARGETS["easyr1"], er))
    assert (er / "examples/reward_function/r1track.py").read_text() == "# my own reward\n"
    assert (er / "examples/reward_function/math.py").is_file()


def test_link_mode(tmp_path, src):
    pt = make_pytracking(tmp_path / "pt")
    install("pytracking", pt, src, link=True)
    link = pt / "pytracking/tracker/r1track/__init__.py"
    assert link.is_symlink() and link.resolve() == (src / "plugins/pytracking/tracker/r1track/__init__.py").resolve()
    assert not plan_install(TARGETS["pytracking"], pt, source=src, link=True).changes
    # switching back to copies replaces our own links without --force
    plan = install("pytracking", pt, src)
    assert not plan.conflicts and not link.is_symlink()
    apply_plan(plan_uninstall(TARGETS["pytracking"], pt))
    assert not (pt / "pytracking/tracker/r1track").exists()


def test_pytracking_local_py_hint(tmp_path, src):
    plan = plan_install(TARGETS["pytracking"], make_pytracking(tmp_path / "a"), source=src)
    assert any("local_env_settings" in n for n in plan.notes)
    plan = plan_install(TARGETS["pytracking"], make_pytracking(tmp_path / "b", local_py=True), source=src)
    assert plan.notes == []


def test_import_check(tmp_path):
    assert r1track_import_check() is None  # the test interpreter has r1track
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    msg = r1track_import_check(str(fake))
    assert msg and "pip install -e" in msg and str(fake) in msg


def test_real_checkout_has_every_plugin_source():
    for spec in TARGETS.values():
        for fmap in spec.files:
            assert (REPO / fmap.src).exists(), f"{spec.name}: {fmap.src} missing"
        for merge in spec.merges:
            assert (REPO / merge.src).is_file()


def test_install_plugins_script_runs_without_r1track_installed(tmp_path):
    lf = make_llamafactory(tmp_path / "lf")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    base = getattr(sys, "_base_executable", sys.executable)
    proc = subprocess.run([base, str(REPO / "install_plugins.py"), "--llamafactory", str(lf), "--dry-run"], capture_output=True, text=True, env=env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "LLaMA-Factory at" in proc.stdout


# -- never lose a user's bytes ------------------------------------------------------------------------------------


def test_second_force_never_overwrites_the_users_original_file(tmp_path, src):
    er = make_easyr1(tmp_path / "er")
    reward = er / "examples/reward_function/r1track.py"
    reward.write_text("# my original reward\n")
    install("easyr1", er, src, force=True)
    reward.write_text("# my later edit of the installed file\n")
    plan = install("easyr1", er, src, force=True)
    assert any(a.kind == "force" and "r1track.py.r1track-backup-2" in a.detail for a in plan.actions)
    assert (er / "examples/reward_function/r1track.py.r1track-backup").read_text() == "# my original reward\n"
    assert (er / "examples/reward_function/r1track.py.r1track-backup-2").read_text() == "# my later edit of the installed file\n"
    plan = plan_uninstall(TARGETS["easyr1"], er)
    assert ("keep", "examples/reward_function/r1track.py.r1track-backup-2") in {(a.kind, a.path) for a in plan.actions}
    apply_plan(plan)
    assert reward.read_text() == "# my original reward\n"  # the original bytes, not the edit
    assert (er / "examples/reward_function/r1track.py.r1track-backup-2").read_text() == "# my later edit of the installed file\n"


def test_update_after_force_still_restores_the_original_on_uninstall(tmp_path, src):
    er = make_easyr1(tmp_path / "er")
    reward = er / "examples/reward_function/r1track.py"
    reward.write_bytes(b"# original\n")
    install("easyr1", er, src, force=True)
    (src / "plugins/easyr1/reward_function/r1track.py").write_text("REWARD_TYPE = 'batch'  # new release\n")
    assert any(a.kind == "update" for a in install("easyr1", er, src).actions)
    apply_plan(plan_uninstall(TARGETS["easyr1"], er))
    assert reward.read_bytes() == b"# original\n"


MINE = {"file_name": "my_own.json"}


def forced_then_edited(tmp_path: Path, src: Path, edit) -> tuple[Path, Path]:
    """A LLaMA-Factory checkout whose own r1_track entry (MINE) was replaced by --force, then edited by
    ``edit(entry)`` (which returns the new entry)."""
    lf = make_llamafactory(tmp_path / "lf")
    info_path = lf / "data/dataset_info.json"
    info_path.write_text(json.dumps({**USER_ENTRY, "r1_track": MINE}, indent=2))
    install("llamafactory", lf, src, force=True)
    info = json.loads(info_path.read_text())
    info["r1_track"] = edit(info["r1_track"])
    info_path.write_text(json.dumps(info, indent=2))
    return lf, info_path


def test_force_replaced_entry_edited_by_the_user_is_restored_and_the_edit_kept(tmp_path, src):
    lf, info_path = forced_then_edited(tmp_path, src, lambda e: {**e, "num_samples": 100})  # the user tunes it
    mine = MINE
    plan = plan_uninstall(TARGETS["llamafactory"], lf)
    assert any(a.kind == "restore" and "r1_track.r1track-edited" in a.detail for a in plan.actions)
    apply_plan(plan)
    after = json.loads(info_path.read_text())
    assert after["r1_track"] == mine  # the original entry is back
    assert after["r1_track.r1track-edited"] == {"file_name": "r1track/sharegpt.json", "num_samples": 100}
    assert after["alpaca_en_demo"] == USER_ENTRY["alpaca_en_demo"]


def test_second_force_over_an_edited_entry_keeps_the_original(tmp_path, src):
    lf, info_path = forced_then_edited(tmp_path, src, lambda e: {"file_name": "edited.json"})
    mine = MINE
    install("llamafactory", lf, src, force=True)
    apply_plan(plan_uninstall(TARGETS["llamafactory"], lf))
    after = json.loads(info_path.read_text())
    assert after["r1_track"] == mine and after["r1_track.r1track-edited"] == {"file_name": "edited.json"}


def test_unwritable_folder_leaves_the_tree_unchanged(tmp_path, src, monkeypatch, capsys):
    from r1track.installer import apply as inst  # where check_writable looks writable up

    lf = make_llamafactory(tmp_path / "lf")
    before = snapshot(lf)
    data = lf / "data"
    if os.geteuid() == 0:  # root writes through permission bits: make the probe meet a read-only folder
        real = inst.writable
        monkeypatch.setattr(inst, "writable", lambda folder, probe=True: folder != data and real(folder, probe))
    else:
        data.chmod(0o555)
    try:
        monkeypatch.setenv("R1TRACK_HOME", str(src))
        p = argparse.ArgumentParser()
        cmd.add_arguments(p)
        assert cmd.run(p.parse_args(["--llamafactory", str(lf)])) == 2
        out = capsys.readouterr().out
        assert f"cannot write in {data}" in out and "merge" not in out  # no plan printed as if applied
        assert snapshot(lf) == before
    finally:
        data.chmod(0o755)


def test_symlinked_dataset_info_stays_a_link(tmp_path, src):
    lf = make_llamafactory(tmp_path / "lf")
    real = lf / "data/shared_info.json"
    os.replace(lf / "data/dataset_info.json", real)
    (lf / "data/dataset_info.json").symlink_to("shared_info.json")
    install("llamafactory", lf, src)
    link = lf / "data/dataset_info.json"
    assert link.is_symlink() and "r1_track" in json.loads(real.read_text())
    apply_plan(plan_uninstall(TARGETS["llamafactory"], lf))
    assert link.is_symlink() and json.loads(real.read_text()) == USER_ENTRY
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(USER_ENTRY))
    link.unlink()
    link.symlink_to(outside)
    with pytest.raises(InstallError, match="outside"):
        plan_install(TARGETS["llamafactory"], lf, source=src)
    assert json.loads(outside.read_text()) == USER_ENTRY


def test_dataset_info_keeps_indentation_and_key_order_and_refuses_duplicates(tmp_path, src):
    lf = make_llamafactory(tmp_path / "lf")
    info_path = lf / "data/dataset_info.json"
    original = '{\n    "zeta": {"file_name": "z.json"},\n    "alpha": {\n        "file_name": "a.json"\n    }\n}\n'
    info_path.write_text(original)
    install("llamafactory", lf, src)
    text = info_path.read_text()
    assert text.startswith('{\n    "zeta": {\n        "file_name": "z.json"\n    },\n    "alpha"')
    assert list(json.loads(text)) == ["zeta", "alpha", "r1_track", "r1_track_hub"]
    apply_plan(plan_uninstall(TARGETS["llamafactory"], lf))
    assert json.loads(info_path.read_text()) == json.loads(original) and info_path.read_text().count("\n    \"") == 2
    info_path.write_text('{"a": {"file_name": "1.json"}, "a": {"file_name": "2.json"}}')
    with pytest.raises(InstallError, match="duplicate key 'a'"):
        plan_install(TARGETS["llamafactory"], lf, source=src)


def test_uninstall_removes_pycache_in_folders_it_created(tmp_path, src, capsys, monkeypatch):
    pt = make_pytracking(tmp_path / "pt")
    install("pytracking", pt, src)
    cache = pt / "pytracking/tracker/r1track/__pycache__"
    cache.mkdir()
    (cache / "__init__.cpython-311.pyc").write_bytes(b"compiled")
    (pt / "pytracking/tracker/r1track/notes.txt").write_text("mine")  # not ours: this folder must stay
    monkeypatch.setenv("R1TRACK_HOME", str(src))
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    assert cmd.run(p.parse_args(["--pytracking", str(pt), "--uninstall"])) == 0
    out = capsys.readouterr().out
    assert not (pt / "pytracking/parameter/r1track").exists()
    assert "pytracking/parameter/r1track  (created by the install; removed)" in out
    assert "pytracking/tracker/r1track  (kept: it holds files that are not r1track's)" in out
    assert not cache.exists() and (pt / "pytracking/tracker/r1track/notes.txt").is_file()


def test_wording_of_dry_run_and_refusals(tmp_path, src, capsys, monkeypatch):
    monkeypatch.setenv("R1TRACK_HOME", str(src))
    pt = make_pytracking(tmp_path / "pt")
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    cmd.run(p.parse_args(["--pytracking", str(pt), "--dry-run"]))
    out = capsys.readouterr().out
    assert f"would write manifest {MANIFEST_NAME}\n" in out and "(written)" not in out
    with pytest.raises(InstallError) as err:
        plan_install(TARGETS["pytracking"], tmp_path, source=src)
    assert "(expected" not in str(err.value) and "it has no pytracking/tracker/base/basetracker.py" in str(err.value)
