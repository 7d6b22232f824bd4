"""`debug-sink dev` stopped by a signal at the awkward moments (README "Dev mode": Ctrl-C stops
everything in order, also during start-up): during the first initdb, while a server is being
forked, and before the sink has joined its group. The interrupt is never lost, nothing is left
half-made, and no event is dropped without a word."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import psutil
import pytest

from tests import support as s
from tests.acceptance.test_dev import running, start_dev

pytestmark = pytest.mark.timeout(120)


class TestInterruptedFirstStart:
    @pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
    async def test_a_signal_during_the_first_initdb_and_the_next_start_works(
        self, tmp_path: Path, sig: signal.Signals
    ) -> None:
        """The signal (to dev only, as `kill` or `timeout` send it) stops initdb half-way; no
        half-made cluster is left for the next start to trip on (it would fail with
        'database "postgres" does not exist')."""
        data_dir = tmp_path / "dev"
        async with running(await start_dev(data_dir, "--no-ui")) as dev:

            async def initdb_half_way() -> bool:
                """initdb has written PG_VERSION and is bootstrapping the catalog (in a server
                of its own): the moment a stop used to leave a cluster without databases."""
                with contextlib.suppress(psutil.Error):
                    return any("--boot" in p.cmdline() for p in dev.descendants())
                return False

            await s.eventually(initdb_half_way, timeout=60, interval=0.005, what="initdb")
            dev.proc.send_signal(sig)
            code, err = await dev.finish()
        assert code == 130, err
        assert "interrupted" in dev.output

        async with running(await start_dev(data_dir, "--no-ui")) as again:
            # The schema step connects to the database initdb makes last: enough.
            await again.wait_for_output("migrated (", timeout=60)
            again.proc.send_signal(signal.SIGINT)
            code, err = await again.finish()
        assert code == 130, err
