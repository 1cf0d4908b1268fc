"""chatreid.atomic.write_text: a reader sees the old file or the whole new one, and a failed write
leaves neither a changed file nor a temporary one behind."""

import pytest

from chatreid.atomic import write_text


def test_write_text_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    write_text(path, "old")
    assert write_text(path, "new ✓") == path
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    path = tmp_path / "record.json"
    write_text(path, "old")
    with pytest.raises(TypeError):
        write_text(path, 123)  # not text: fails after the temporary file was opened
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
