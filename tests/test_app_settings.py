from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from app.settings import MAX_RECENT, Settings, use_settings_folder
from engine.train import default_preset


def make(path: Path) -> Settings:
    return Settings(QSettings(str(path), QSettings.Format.IniFormat))


def test_values_persist_across_instances(tmp_path, qapp):
    ini = tmp_path / "handful.ini"
    s = make(ini)
    assert s.preset == default_preset("auto") and s.device == "auto"  # until chosen, the device's preset
    s.preset, s.device = "high", "cpu"
    assert s.refine_poses is False
    s.refine_poses = True
    s.projects_folder = tmp_path / "projects"
    s.save_window_state(QByteArray(b"geom"), QByteArray(b"state"))
    s.sync()
    again = make(ini)
    assert again.preset == "high"
    assert again.device == "cpu"
    assert again.refine_poses is True
    assert again.projects_folder == tmp_path / "projects"
    assert again.window_state() == (QByteArray(b"geom"), QByteArray(b"state"))


def test_unknown_stored_values_fall_back_to_defaults(tmp_path, qapp):
    ini = tmp_path / "handful.ini"
    raw = QSettings(str(ini), QSettings.Format.IniFormat)
    raw.setValue("job/preset", "ultra")
    raw.setValue("job/device", "tpu")
    raw.sync()
    s = make(ini)
    assert (s.preset, s.device) == (default_preset("auto"), "auto")


def test_recent_files_most_recent_first_without_duplicates_and_capped(tmp_path, qapp):
    s = make(tmp_path / "handful.ini")
    for i in range(MAX_RECENT + 3):
        s.add_recent_file(tmp_path / f"scene_{i}.ply")
    s.add_recent_file(tmp_path / "scene_5.ply")
    s.sync()
    files = make(tmp_path / "handful.ini").recent_files()
    assert len(files) == MAX_RECENT
    assert files[0] == (tmp_path / "scene_5.ply").resolve()
    assert len(set(files)) == len(files)
    s.remove_recent_file(files[0])
    assert files[0] not in s.recent_files()
    s.clear_recent_files()
    assert s.recent_files() == []


def test_settings_folder_redirect(tmp_path, qapp, monkeypatch):
    monkeypatch.setenv("HANDFUL_SETTINGS_DIR", str(tmp_path / "cfg"))
    s = Settings()
    s.preset = "preview"
    s.sync()
    assert Path(s.store.fileName()).is_relative_to(tmp_path / "cfg")
    assert Settings().preset == "preview"
    use_settings_folder(tmp_path / "cfg")  # idempotent
