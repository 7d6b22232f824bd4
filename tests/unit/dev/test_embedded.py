"""The embedded PostgreSQL: run as root, as the named user with that user's own groups (found
by id, whatever their names) and never as root itself; its cluster made whole or not at all."""

from __future__ import annotations

import grp
import os
import pwd
import signal
from pathlib import Path

import pytest

from debug_sink.dev import embedded
from debug_sink.dev.embedded import check_run_as
from debug_sink.errors import EmbeddedServiceError


def _user_in_a_group_named_otherwise() -> pwd.struct_passwd:
    """An existing user whose primary group is not named like it (``nobody``/``nogroup``)."""
    for entry in pwd.getpwall():
        try:
            group = grp.getgrgid(entry.pw_gid).gr_name
        except KeyError:
            continue
        if entry.pw_uid != 0 and group != entry.pw_name:
            return entry
    pytest.skip("every user here has a group of its own name")


class TestRunAsGroups:
    """The server runs with the user's primary group and supplementary groups."""

    def test_the_primary_group_is_taken_by_id_not_by_the_users_name(self) -> None:
        entry = _user_in_a_group_named_otherwise()
        args = embedded._as_user(entry.pw_name)
        assert args["user"] == entry.pw_name
        assert args["group"] == entry.pw_gid
        assert set(args["extra_groups"]) == (
            set(os.getgrouplist(entry.pw_name, entry.pw_gid)) - {entry.pw_gid}
        )

    @pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
    def test_the_data_directory_goes_to_the_user_and_its_primary_group(
        self, tmp_path: Path
    ) -> None:
        entry = _user_in_a_group_named_otherwise()
        embedded._chown(tmp_path, entry.pw_name)
        st = tmp_path.stat()
        assert (st.st_uid, st.st_gid) == (entry.pw_uid, entry.pw_gid)


class TestRunAsRoot:
    """``--pg-user`` names an unprivileged user: uid 0 is refused in one line, naming the flag."""

    def test_a_user_with_uid_0_is_refused(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setattr(os, "geteuid", lambda: 0)
        root = pwd.getpwuid(0).pw_name
        with pytest.raises(EmbeddedServiceError) as refused:
            check_run_as(root, tmp_path / "postgres")
        message = str(refused.value)
        assert "\n" not in message
        assert f"--pg-user {root}" in message
        assert "unprivileged" in message


class _Stop(Exception):
    """What the test's SIGUSR1 handler raises: a signal arriving during initdb."""


def fake_initdb(bin_dir: Path, then: str) -> None:
    """An ``initdb`` that starts a cluster the way the real one does (``PG_VERSION`` first),
    then runs the shell command ``then``; a ``postgres`` that exits at once."""
    bin_dir.mkdir()
    initdb, postgres = bin_dir / "initdb", bin_dir / "postgres"
    initdb.write_text(
        '#!/bin/sh\nwhile [ "$1" != -D ]; do shift; done\n'
        f'mkdir -p "$2/global" && echo 18 > "$2/PG_VERSION"\n{then}\n'
    )
    postgres.write_text("#!/bin/sh\nexit 1\n")
    for script in (initdb, postgres):
        script.chmod(0o755)


class TestInitdb:
    """A new cluster is in the data directory whole or not at all: an initdb that fails or is
    interrupted half-way leaves nothing the next start would take for a finished cluster."""

    @pytest.fixture
    def pg(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> embedded.EmbeddedPostgres:
        monkeypatch.setattr(
            embedded.EmbeddedPostgres, "bin_dir", staticmethod(lambda: tmp_path / "bin")
        )
        monkeypatch.setattr(embedded.EmbeddedPostgres, "_run_as", lambda self: None)
        return embedded.EmbeddedPostgres(tmp_path / "dev" / "postgres")

    def test_a_failed_initdb_leaves_no_cluster(
        self, pg: embedded.EmbeddedPostgres, tmp_path: Path
    ) -> None:
        fake_initdb(tmp_path / "bin", "echo 'initdb: error: no space left' >&2; exit 1")
        with pytest.raises(EmbeddedServiceError, match="no space left"):
            pg.start()
        assert not (pg.data_dir / "PG_VERSION").exists()
        assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == []

    def test_an_interrupted_initdb_leaves_no_cluster(
        self, pg: embedded.EmbeddedPostgres, tmp_path: Path
    ) -> None:
        def stop(signum: int, frame: object) -> None:
            raise _Stop

        # SIGTERM, as dev would get it: held while initdb is forked (stop_signals_held), so
        # it is delivered once initdb is recorded -- another signal could land inside
        # Popen, before there is a process to stop.
        fake_initdb(tmp_path / "bin", "kill -TERM $PPID; exec sleep 30")
        previous = signal.signal(signal.SIGTERM, stop)
        try:
            with pytest.raises(_Stop):
                pg.start()
        finally:
            signal.signal(signal.SIGTERM, previous)
        assert not (pg.data_dir / "PG_VERSION").exists()
        assert sorted(p.name for p in (tmp_path / "dev").iterdir()) == []

    def test_what_an_earlier_unfinished_initdb_left_is_redone(
        self, pg: embedded.EmbeddedPostgres, tmp_path: Path
    ) -> None:
        """A run killed outright (SIGKILL) during initdb leaves its sibling directory: the next
        start removes it and runs initdb again; the cluster is renamed into place."""
        left = pg.data_dir.with_name(".postgres.initdb")
        (left / "global").mkdir(parents=True)
        (left / "PG_VERSION").write_text("18\n")
        (left / "half-made").touch()
        fake_initdb(tmp_path / "bin", 'touch "$2/finished"')
        with pytest.raises(EmbeddedServiceError, match="PostgreSQL exited"):  # the fake
            pg.start()
        assert (pg.data_dir / "finished").exists()
        assert not (pg.data_dir / "half-made").exists()
        assert not left.exists()

    def test_a_finished_cluster_is_never_replaced(
        self, pg: embedded.EmbeddedPostgres, tmp_path: Path
    ) -> None:
        (pg.data_dir / "base").mkdir(parents=True)
        (pg.data_dir / "PG_VERSION").write_text("18\n")
        fake_initdb(tmp_path / "bin", "exit 0")
        with pytest.raises(EmbeddedServiceError, match="PostgreSQL exited"):  # the fake
            pg.start()
        assert (pg.data_dir / "base").is_dir()
        assert not pg.data_dir.with_name(".postgres.initdb").exists()


class TestSignalsWhileForking:
    """A stop signal arriving while a child is forked waits until the child is recorded; the
    child itself receives the stop signals as usual."""

    def test_a_signal_during_the_fork_is_delivered_after_it(self) -> None:
        got: list[int] = []
        handler = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
        try:
            with embedded.stop_signals_held():
                signal.raise_signal(signal.SIGTERM)
                assert got == [], "held while the block runs"
            assert got == [signal.SIGTERM]
        finally:
            signal.signal(signal.SIGTERM, handler)

    def test_the_child_does_not_inherit_the_held_signals(self, tmp_path: Path) -> None:
        with embedded.stop_signals_held():
            child = embedded._spawn(["sleep", "30"], tmp_path / "log", signal.SIGKILL)
        try:
            status = Path(f"/proc/{child.pid}/status").read_text()
            blocked = int(status.split("SigBlk:")[1].split()[0], 16)
            for sig in (signal.SIGINT, signal.SIGTERM):
                assert not blocked & (1 << (sig - 1)), f"{sig.name} blocked in the child"
        finally:
            child.kill()
            child.wait()
