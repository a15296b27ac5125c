"""The record beside the data: written whole, a damaged one named in one line, one writer per folder."""

from __future__ import annotations

import json

import pytest

from fcn_lightning.data.download import MANIFEST_NAME, DownloadError, Manifest
from fcn_lightning.data.download.manifest import folder_lock


def test_the_record_keeps_files_and_items_across_runs(tmp_path):
    Manifest(tmp_path).record("files", "a.tar", sha256="0" * 64)
    Manifest(tmp_path).record("items", "a", state="complete", placed=["A"])
    again = Manifest(tmp_path)
    assert again.file("a.tar")["sha256"] == "0" * 64 and again.item("a")["placed"] == ["A"]
    assert json.loads((tmp_path / MANIFEST_NAME).read_text())["items"]["a"]["state"] == "complete"
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]  # no temporary file left


def test_a_damaged_record_is_one_line_saying_what_to_do(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text('{"files": {')
    with pytest.raises(DownloadError, match=rf"{MANIFEST_NAME} cannot be read .*move it away"):
        Manifest(tmp_path)


@pytest.mark.parametrize(
    "record",
    [
        '{"files": {"w.caffemodel": "x"}}',
        '{"files": [], "items": {}}',
        '{"items": {"voc2012": {"state": "complete", "placed": "VOCdevkit"}}}',
        '{"items": {"voc2012": {"state": "complete", "placed": [3]}}}',
        '{"items": {"voc2012": null}}',
        '{"files": {"w.caffemodel": {"sha256": 5}}}',
    ],
    ids=["file-not-an-object", "files-not-an-object", "placed-a-string", "placed-not-names", "item-null",
         "digest-not-text"],
)  # fmt: skip
def test_a_record_edited_into_another_shape_is_named_in_one_line_not_a_traceback_later(record, tmp_path):
    (tmp_path / MANIFEST_NAME).write_text(record)
    with pytest.raises(DownloadError, match=rf"{MANIFEST_NAME} cannot be read .*move it away"):
        Manifest(tmp_path)


def test_a_second_writer_of_a_folder_stops_in_one_line(tmp_path):
    with (
        folder_lock(tmp_path),
        pytest.raises(DownloadError, match="another fcn-lightning download is writing"),
        folder_lock(tmp_path),
    ):
        pass
    with folder_lock(tmp_path):  # free again once the first is done
        pass
