"""Manifests in WanGP's queue formats: queue.json, queue.zip with attachments (extracted safely), and outputs
(a video or image carrying WanGP settings) as one-job manifests."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from conftest import definition, invoke, write_definition
from wangp_cli.batch import manifest as M
from wangp_cli.batch.manifest import read_manifest
from wangp_cli.core.errors import WangpError

Image = pytest.importorskip("PIL.Image")

V12_TYPE = "WanGP v12.60 by DeepBeepMeep - Wan2.1 Image2video 480p 14B"


def png_bytes(tmp_path: Path, color=(200, 30, 30), name="source.png") -> bytes:
    path = tmp_path / name
    Image.new("RGB", (32, 32), color).save(path, "PNG")
    return path.read_bytes()


def task(task_id: int, **params) -> dict:
    return {"id": task_id, "params": {"model_type": "i2v", "prompt": f"task {task_id}", **params},
            "plugin_data": {"some_plugin": {"x": 1}}}


def write_zip(path: Path, tasks: list, members: dict | None = None, *, symlinks: dict | None = None) -> Path:
    """A queue zip as WanGP's _save_queue_to_zip writes it: queue.json first, then the attachments."""
    with zipfile.ZipFile(path, "w") as archive:
        if tasks is not None:
            archive.writestr("queue.json", json.dumps(tasks, indent=4))
        for name, data in (members or {}).items():
            archive.writestr(zipfile.ZipInfo(name), data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def inside(path: Path, folder: Path) -> bool:
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))


# ---------------------------------------------------------------------------------------------------- queue.json


def test_queue_json_tasks_become_jobs_and_their_ids_and_plugin_data_are_not_used(tmp_path):
    path = tmp_path / "queue.json"
    path.write_text(json.dumps([task(1, seed=5, video_length=33), task(2, model_type="t2v", seed=6)], indent=4))
    first, second = read_manifest(path)
    assert (first.model_id, first.settings["seed"], first.settings["video_length"]) == ("i2v", 5, 33)
    assert (second.model_id, second.settings["prompt"]) == ("t2v", "task 2")
    assert first.error is None and first.warnings == [] and "plugin_data" not in first.settings
    assert first.id.startswith("i2v-") and second.id.startswith("t2v-")  # named by what they ask, not "1"/"2"
    assert (first.line, second.line) == (2, 16)  # where each task object starts


def test_a_list_of_settings_and_one_settings_object_are_read_as_wangp_process_reads_them(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"model_type": "t2v", "seed": 1}, {"model_type": "t2v", "seed": 2}]))
    assert [job.settings["seed"] for job in read_manifest(listed)] == [1, 2]
    single = tmp_path / "one.json"
    single.write_text(json.dumps({"model_type": "t2v", "seed": 3, "type": V12_TYPE, "settings_version": 2.74}))
    (job,) = read_manifest(single)
    assert job.settings == {"seed": 3} and job.model_id == "t2v"


def test_base_model_type_names_the_model_when_model_type_is_missing(tmp_path):
    path = tmp_path / "queue.json"
    path.write_text(json.dumps([{"id": 1, "params": {"base_model_type": "t2v", "seed": 1}},
                                {"id": 2, "params": {"model_type": "my_ft", "base_model_type": "t2v"}},
                                {"id": 3, "params": {"seed": 1}}]))
    fallback, own, none = read_manifest(path)
    assert (fallback.model_id, own.model_id) == ("t2v", "my_ft")
    assert "base_model_type" not in fallback.settings
    assert "no model" in none.error


def test_edit_tasks_are_refused_clearly(tmp_path):
    path = tmp_path / "queue.json"
    path.write_text(json.dumps([{"id": 1, "params": {"mode": "edit_remux", "video_source": "a.mp4"}},
                                task(2)]))
    edit, fine = read_manifest(path)
    assert "WanGP edit task (mode 'edit_remux')" in edit.error and "does not post-process" in edit.error
    assert fine.error is None


def test_a_queue_item_without_params_object_is_an_error_for_that_task_only(tmp_path):
    path = tmp_path / "queue.json"
    path.write_text(json.dumps([{"id": 1, "params": "oops"}, task(2)]))
    broken, fine = read_manifest(path)
    assert "not a WanGP task" in broken.error and fine.error is None


# ----------------------------------------------------------------------------------------------------- queue.zip


def test_a_queue_zip_extracts_its_attachments_and_maps_the_media_keys(tmp_path):
    image, ref = png_bytes(tmp_path), png_bytes(tmp_path, (0, 0, 255), "ref.png")
    tasks = [task(1, image_start=["task1_image_start_0.png"], image_end="task1_image_end_0.png", seed=7),
             task(2, model_type="vace_14B", image_refs=["task2_image_refs_0.png", "task2_image_refs_1.png"],
                  audio_guide="task2_audio_guide_0.wav")]
    members = {"task1_image_start_0.png": image, "task1_image_end_0.png": image, "task2_image_refs_0.png": ref,
               "task2_image_refs_1.png": image, "task2_audio_guide_0.wav": b"RIFF....WAVE",
               "unreferenced.bin": b"never extracted"}
    archive = write_zip(tmp_path / "queue.zip", tasks, members)
    media = tmp_path / "outputs" / "_loaded_queue_cache"
    first, second = read_manifest(archive, media_dir=media)
    (folder,) = [p for p in media.iterdir()]
    assert folder.name.startswith("queue-") and sorted(p.name for p in folder.iterdir()) == sorted(
        set(members) - {"unreferenced.bin"})
    assert first.error is None and first.model_id == "i2v" and first.settings["seed"] == 7
    assert first.media["image"].read_bytes() == image and inside(first.media["image"], folder)
    assert first.media["last_image"].is_file() and inside(first.media["last_image"], folder)
    assert [p.read_bytes() for p in second.media["reference_images"]] == [ref, image]
    assert Path(second.settings["audio_guide"]).read_bytes() == b"RIFF....WAVE"
    assert second.warnings == ["'audio_guide' is a WanGP media input wangp does not use; it has no effect"]
    with Image.open(first.media["image"]) as opened:
        assert opened.size == (32, 32)
    # the same zip again: the same folder, nothing left over from the second unpacking
    again, _ = read_manifest(archive, media_dir=media)
    assert again.media == first.media and [p.name for p in media.iterdir()] == [folder.name]
    assert again.id == first.id


def test_without_a_media_folder_the_attachments_go_to_a_temporary_folder(tmp_path):
    archive = write_zip(tmp_path / "queue.zip", [task(1, image_start="task1_image_start_0.png")],
                        {"task1_image_start_0.png": png_bytes(tmp_path)})
    (job,) = read_manifest(archive)
    assert job.media["image"].is_file() and not inside(job.media["image"], tmp_path)
    assert job.media["image"].parent.name.startswith("wangp-queue-")


def test_malicious_zip_entries_are_never_extracted(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    good = png_bytes(tmp_path)
    tasks = [task(1, image_start="../x.png"), task(2, image_start="/abs_wangp_test.png"),
             task(3, image_start="link.png"), task(4, image_start="ok.png"), task(5, image_start="missing.png"),
             task(6, image_start="sub\\evil.png"), task(7, image_start=str(tmp_path / "source.png"))]
    archive = write_zip(tmp_path / "queue.zip", tasks,
                        {"../x.png": good, "/abs_wangp_test.png": good, "ok.png": good, "sub\\evil.png": good,
                         "../../unreferenced.png": good},
                        symlinks={"link.png": "/etc/passwd"})
    media = work / "media"
    jobs = read_manifest(archive, media_dir=media)
    errors = [job.error for job in jobs]
    assert "not a safe relative path" in errors[0] and "'../x.png'" in errors[0]
    assert "not a safe relative path" in errors[1]
    assert "symbolic link" in errors[2]
    assert errors[3] is None and jobs[3].media["image"].read_bytes() == good
    assert errors[4] == "'image_start' names 'missing.png', which is not in the zip"
    assert "not a safe relative path" in errors[5]
    assert errors[6] is None and jobs[6].media["image"] == tmp_path / "source.png"  # a path on disk, as WanGP
    assert [job.id for job in jobs[:3]] == ["record-1", "record-2", "record-3"]
    assert not (work / "x.png").exists() and not (tmp_path / "x.png").exists()
    assert not Path("/abs_wangp_test.png").exists() and not (tmp_path / "unreferenced.png").exists()
    extracted = [p for p in media.rglob("*")]
    assert [p.name for p in extracted if p.is_file()] == ["ok.png"]
    assert not any(p.is_symlink() for p in extracted)


def test_size_limits(tmp_path, monkeypatch):
    archive = write_zip(tmp_path / "queue.zip", [task(1, image_start="a.png"), task(2, image_start="b.png")],
                        {"a.png": b"x" * 100, "b.png": b"y" * 10})
    monkeypatch.setattr(M, "MAX_ATTACHMENT_BYTES", 50)
    big, small = read_manifest(archive, media_dir=tmp_path / "media")
    assert "larger than 50 bytes" in big.error and small.error is None
    monkeypatch.setattr(M, "MAX_ATTACHMENTS_BYTES", 5)
    with pytest.raises(WangpError, match="attachments hold more than 5 bytes"):
        read_manifest(archive, media_dir=tmp_path / "media2")


def test_zip_without_queue_json_and_broken_zips(tmp_path):
    archive = write_zip(tmp_path / "settings.zip", None, {"task1_image_start_0.png": b"x"})
    with pytest.raises(WangpError, match="queue.json not found in zip file"):
        read_manifest(archive)
    not_zip = tmp_path / "fake.zip"
    not_zip.write_text('{"model_type": "t2v"}')
    with pytest.raises(WangpError, match="cannot read queue zip"):
        read_manifest(not_zip)
    bad_json = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_json, "w") as handle:
        handle.writestr("queue.json", '[\n  {"id": 1,\n   "params": {,}}\n]')
    with pytest.raises(WangpError, match=r"queue.json:3:\d+: not valid JSON"):
        read_manifest(bad_json)
    not_list = tmp_path / "dict.zip"
    with zipfile.ZipFile(not_list, "w") as handle:
        handle.writestr("queue.json", '{"model_type": "t2v"}')
    with pytest.raises(WangpError, match="must hold a list of tasks"):
        read_manifest(not_list)


def test_the_cli_dry_run_reads_a_queue_zip_with_its_image(tmp_path):
    home = tmp_path / "home"
    write_definition(home, "my_i2v", definition(architecture="i2v"))
    archive = write_zip(tmp_path / "queue.zip",
                        [task(1, model_type="my_i2v", image_start=["task1_image_start_0.png"], video_length=5,
                              num_inference_steps=2, seed=4),
                         {"id": 2, "params": {"mode": "edit_postprocessing", "video_source": "a.mp4"}}],
                        {"task1_image_start_0.png": png_bytes(tmp_path)})
    result = invoke("generate", "--manifest", archive, "--dry-run", "--target", "july", "--format", "json",
                    "-o", tmp_path / "out", home=home)
    jobs = json.loads(result.stdout)["jobs"]
    assert result.exit_code == 1
    assert (jobs[0]["status"], jobs[0]["model"], jobs[0]["seed"], jobs[0]["frames"]) == ("valid", "my_i2v", 4, 5)
    assert jobs[1]["status"] == "invalid" and "edit task" in jobs[1]["error"]
