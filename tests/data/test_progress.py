"""Progress of data jobs: a bar on a terminal, a few plain lines in a log file."""

from __future__ import annotations

import fcn_lightning.data.progress as progress_module
from fcn_lightning.data.progress import ByteProgress, human_bytes


def test_bytes_in_a_log_are_about_ten_plain_lines_with_amount_share_rate_and_time_left(capsys):
    with ByteProgress("file.tar", total=10_000_000) as shown:
        for _ in range(100):
            shown.update(100_000)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 10 and "\r" not in "".join(lines)
    assert lines[0].startswith("file.tar: 1.0 MB of 10.0 MB (10%), ") and "/s, about " in lines[0]
    assert lines[-1].startswith("file.tar: 10.0 MB of 10.0 MB (100%)")


def test_a_resumed_transfer_counts_from_what_is_there_and_an_unknown_total_still_reports(capsys):
    with ByteProgress("file.tar", total=None, done=250_000_000) as shown:
        shown.update(10)
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("file.tar: 250.0 MB, ") and " of " not in line


def test_on_a_terminal_it_is_a_bar_of_bytes(capsys, monkeypatch):
    monkeypatch.setattr(progress_module, "is_terminal", lambda stream=None: True)
    with ByteProgress("file.tar", total=2_000_000) as shown:
        shown.update(2_000_000)
    err = capsys.readouterr().err
    assert "file.tar" in err and "\r" in err and "/2.00M" in err and "B/s" in err


def test_sizes_read_as_people_write_them():
    assert [human_bytes(n) for n in (812, 1_500, 553_432_081, 1_900_000_000)] == [
        "812 B", "1.5 kB", "553.4 MB", "1.9 GB",
    ]  # fmt: skip
