"""A full disk under the hook directory, simulated (the real one, a tiny tmpfs, is in
tests/integration/hooks/test_disk_full.py): a file that cannot be written keeps its old
content and leaves nothing behind, and the shipper keeps a spool position the disk refuses
in memory -- it goes on from it, sends nothing twice, says so once -- while emptying the
spool, which needs no room, still works."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, cast

import pytest
from structlog.testing import capture_logs

from debug_sink.hooks import files, spool
from debug_sink.hooks.admin import _LogStream
from debug_sink.hooks.shipper import Shipper
from debug_sink.hooks.spool import Spool
from debug_sink.sdk.emitter import Emitter
from debug_sink.settings import Settings


def _full(*_: Any, **__: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_replace_the_disk_refuses_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shipped"
    files.replace(str(path), b"123")
    with monkeypatch.context() as patched:
        patched.setattr(files.os, "write", lambda fd, data: 0)  # a short write: the disk is full
        with pytest.raises(OSError, match="No space"):
            files.replace(str(path), b"4567")
    assert path.read_bytes() == b"123"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"]


def _spool_of(directory: str, lines: int) -> tuple[Spool, list[int]]:
    """A spool of ``lines`` records; the offsets after each."""
    box = Spool(directory, 1 << 20)
    ends = []
    for n in range(lines):
        assert box.append([("hook", {"n": n})])
        ends.append(box.size())
    return box, ends


def _shipper(directory: str) -> Shipper:
    return Shipper(Settings(), directory, emitter=cast("Emitter", object()))


def test_a_position_the_disk_refuses_lives_on_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, ends = _spool_of(str(tmp_path), 3)
    shipper = _shipper(str(tmp_path))
    monkeypatch.setattr(spool, "replace", _full)
    with capture_logs() as logs:
        shipper._offset = ends[1]  # two of three shipped
        shipper._commit()
        shipper._commit()  # tried again: said once
    assert shipper._offset == ends[1]
    assert box.shipped() == 0  # on disk: nothing yet
    assert shipper._pending() == ends[2] - ends[1]  # what this shipper still has to send
    assert [e["event"] for e in logs] == ["hook_spool_position_not_saved"]
    monkeypatch.undo()
    with capture_logs() as logs:
        shipper._commit()
    assert box.shipped() == ends[1]
    assert [e["event"] for e in logs] == ["hook_spool_position_saved"]


def test_an_all_shipped_spool_is_emptied_without_room_on_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box, ends = _spool_of(str(tmp_path), 3)
    box.commit(ends[0])  # an older position on disk
    shipper = _shipper(str(tmp_path))
    monkeypatch.setattr(spool, "replace", _full)
    monkeypatch.setattr(files, "replace", _full)
    shipper._offset = ends[2]  # all shipped
    shipper._commit()
    assert shipper._offset == 0
    assert not shipper._uncommitted
    assert box.size() == 0
    assert box.shipped() == 0
    assert box.start() == 0
    assert not os.path.exists(os.path.join(box.directory, "shipped"))


def test_a_count_the_disk_refuses_in_counters_json_goes_to_the_counts_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = Spool(str(tmp_path), 1 << 20)
    box.count("corrupt")
    monkeypatch.setattr(spool, "replace", _full)
    box.count("corrupt", 2)
    assert box.counters() == {"corrupt": 3}


def test_the_shipper_s_log_lines_survive_a_full_disk(tmp_path: Path) -> None:
    """The shipper logs to the hook log, often on the disk it ships from: a line the disk
    refuses is skipped (a print that raised would end the shipper), and each line is one
    write (the hooks append to the same file)."""
    path = tmp_path / "hook.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        stream = _LogStream(fd)
        stream.write(json.dumps({"event": "a"}))
        assert path.read_bytes() == b""  # not a whole line yet
        stream.write("\n")
        stream.flush()
        assert path.read_bytes() == b'{"event": "a"}\n'
    finally:
        os.close(fd)
    full = os.open("/dev/full", os.O_WRONLY) if os.path.exists("/dev/full") else None
    if full is not None:
        try:
            assert _LogStream(full).write("a line\n") == len("a line\n")
        finally:
            os.close(full)
