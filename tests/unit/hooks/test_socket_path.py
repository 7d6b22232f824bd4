"""The shipper's socket in a hook directory whose path is longer than a Unix socket address
holds (about 107 bytes): bound and reached through the directory's descriptor, so the socket
stays the file ``<dir>/shipper.sock``, under the directory's own permissions."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import threading
from pathlib import Path

import pytest

from debug_sink.hooks import admin, control

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reached through /proc/self/fd (Linux)"
)


@pytest.fixture
def long_dir(tmp_path: Path) -> str:
    directory = tmp_path.joinpath("projects", "a" * 120, "b" * 120, ".claude", "hooks")
    directory.mkdir(parents=True, mode=0o700)
    assert len(control.socket_path(str(directory)).encode()) > 200
    return str(directory)


def _serve_once(directory: str, answer: dict[str, object]) -> tuple[threading.Thread, list[bytes]]:
    """A socket bound as the shipper binds its own, answering one request."""
    address = control.socket_address(directory)
    assert address is not None
    path, fd = address
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(path)
    finally:
        if fd >= 0:
            os.close(fd)
    server.listen(1)
    received: list[bytes] = []

    def run() -> None:
        with server:
            client, _ = server.accept()
            with client:
                received.append(client.makefile("rb").readline())
                client.sendall(json.dumps(answer).encode() + b"\n")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, received


def test_a_short_path_is_used_as_it_is(tmp_path: Path) -> None:
    assert control.socket_address(str(tmp_path)) == (control.socket_path(str(tmp_path)), -1)


def test_a_long_path_is_reached_through_the_directory(long_dir: str) -> None:
    address = control.socket_address(long_dir)
    assert address is not None
    path, fd = address
    try:
        assert path == f"/proc/self/fd/{fd}/{control.SOCKET_NAME}"
        assert len(path) <= 100
    finally:
        os.close(fd)


def test_the_socket_is_the_file_in_the_directory_and_answers(long_dir: str) -> None:
    thread, received = _serve_once(long_dir, {"ok": True, "pid": 7})
    # Bound where a short path would be: in the directory, under its permissions.
    assert stat.S_ISSOCK(os.stat(control.socket_path(long_dir)).st_mode)
    answer = control.request(long_dir, {"op": "status"}, 5)
    thread.join(5)
    assert answer == {"ok": True, "pid": 7}
    assert json.loads(received[0]) == {"op": "status"}
    assert os.listdir(long_dir) == [control.SOCKET_NAME]


def test_no_descriptor_is_left_open(long_dir: str) -> None:
    before = set(os.listdir("/proc/self/fd"))
    assert control.request(long_dir, {"op": "status"}, 0.5) is None  # nothing listens
    assert set(os.listdir("/proc/self/fd")) == before


def test_status_says_a_shipper_runs_even_when_its_socket_does_not_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = admin.take_lock(str(tmp_path))
    assert held is not None
    try:
        assert admin.status(str(tmp_path), as_json=False) == 0
    finally:
        os.close(held)
    assert "shipper: running (not answering on its socket)" in capsys.readouterr().out
