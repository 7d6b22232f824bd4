"""How the embedded PostgreSQL is run as root: as the named user with that user's own groups
(found by id, whatever their names)."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

import pytest

from debug_sink.dev import embedded


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
