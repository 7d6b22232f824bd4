"""How the embedded PostgreSQL is run as root: as the named user with that user's own groups
(found by id, whatever their names), and never as root itself."""

from __future__ import annotations

import grp
import os
import pwd
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
