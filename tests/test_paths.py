"""The project folders are found beside the package, or where CHATREID_HOME says."""

import pytest

from chatreid import paths


def test_folders_beside_the_package_by_default(monkeypatch):
    monkeypatch.delenv(paths.ENV, raising=False)
    assert (paths.examples_dir() / "manifest.json").is_file()
    assert (paths.train_configs_dir() / "stage1.yaml").is_file()
    assert paths.models_dir().parent == paths.docs_dir().parent == paths.home()


def test_chatreid_home_moves_every_folder_and_missing_ones_are_named(monkeypatch, tmp_path):
    monkeypatch.setenv(paths.ENV, str(tmp_path))
    assert paths.home() == tmp_path.resolve() and paths.examples_dir() == tmp_path.resolve() / "examples"
    with pytest.raises(FileNotFoundError, match="CHATREID_HOME") as err:
        paths.require(paths.examples_dir(), "the example galleries")
    assert str(tmp_path) in str(err.value)
    (tmp_path / "examples").mkdir()
    assert paths.require(paths.examples_dir(), "the example galleries") == tmp_path.resolve() / "examples"
