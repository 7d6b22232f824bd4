"""The ``bench`` sub-command of ``debug-sink``."""

from __future__ import annotations

import argparse

import pytest

from debug_sink.bench import command


class TestCommandLine:
    """register_commands: the sub-command, its options and its handler."""

    def test_register_commands(self) -> None:
        """``register_commands`` adds ``bench`` with its options to a subparser set."""
        parser = argparse.ArgumentParser()
        register = command.register_commands
        register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["bench", "--quick", "--only", "latency,sdk", "--json", ""])
        assert args.quick
        assert args.only == ("latency", "sdk")
        assert args.json == ""
        assert args.handler is command._bench
        assert (args.workload, args.repeats, args.prefill) == ("realistic", None, None)
        args = parser.parse_args(
            ["bench", "--workload", "simple", "--repeats", "5", "--prefill", "1000"]
        )
        assert (args.workload, args.repeats, args.prefill) == ("simple", 5, 1000)
        assert args.wal_segments is None
        assert parser.parse_args(["bench", "--wal-segments", "0"]).wal_segments == 0
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", "--workload", "bogus"])
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", "--only", "latency,bogus"])
