"""What the hook command reads from the environment, cheaply.

Owns :class:`HookConfig`: the ``DEBUG_SINK_HOOK_*`` settings the hook command needs on every
invocation (its directory, the spool's bound, whether and how long to look for known fixes),
read straight from ``os.environ``.

Why not :class:`~debug_sink.settings.Settings`: importing pydantic-settings costs ~0.6 s on
the machines we measured, four times the hook command's whole latency bound. The variables
are :class:`~debug_sink.settings.Settings` fields all the same (documented with the others,
validated there, used by the background shipper, which loads the full settings); a unit test
holds the names and defaults of the two equal. Not guaranteed: pydantic's exact validation --
a value this reader cannot use falls back to the default and is reported as a problem
(:attr:`HookConfig.problems`), never raised: the hook must not fail Claude Code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

__all__ = ["DEFAULTS", "HookConfig", "default_dir"]

_PREFIX: Final = "DEBUG_SINK_"

#: Setting name -> default; the same names and defaults as the Settings fields.
DEFAULTS: Final[Mapping[str, object]] = {
    "hook_dir": None,
    "hook_spool_max_bytes": 64 * 1024 * 1024,
    "hook_context": True,
    "hook_context_budget_ms": 60,
    "hook_context_ttl_seconds": 300.0,
    "hook_idle_seconds": 60.0,
}

#: Inclusive bounds of the numeric settings (the Settings fields declare the same).
BOUNDS: Final[Mapping[str, tuple[float, float]]] = {
    "hook_spool_max_bytes": (64 * 1024, 2**40),
    "hook_context_budget_ms": (0, 1000),
    "hook_context_ttl_seconds": (0, 7 * 24 * 3600),
    "hook_idle_seconds": (1, 24 * 3600),
}

_TRUE: Final = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE: Final = frozenset({"0", "false", "f", "no", "n", "off"})


def default_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_STATE_HOME/debug-sink/hooks``, else ``~/.local/state/debug-sink/hooks``."""
    base = environ.get("XDG_STATE_HOME") or os.path.join(
        environ.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "debug-sink", "hooks")


class HookConfig:
    """The hook command's settings; :meth:`from_environ` reads them."""

    __slots__ = (
        "context",
        "context_budget_ms",
        "context_ttl_seconds",
        "directory",
        "idle_seconds",
        "problems",
        "spool_max_bytes",
    )

    def __init__(
        self,
        directory: str,
        *,
        spool_max_bytes: int = 64 * 1024 * 1024,
        context: bool = True,
        context_budget_ms: int = 60,
        context_ttl_seconds: float = 300.0,
        idle_seconds: float = 60.0,
        problems: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.spool_max_bytes = spool_max_bytes
        self.context = context
        self.context_budget_ms = context_budget_ms
        self.context_ttl_seconds = context_ttl_seconds
        self.idle_seconds = idle_seconds
        #: One line per variable that could not be used (its default was).
        self.problems = problems

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HookConfig:
        """The settings of ``environ`` (default: this process's)."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def raw(name: str) -> str | None:
            value = env.get(_PREFIX + name.upper())
            return value.strip() if value is not None and value.strip() else None

        def number(name: str, kind: type[int] | type[float]) -> float:
            default = DEFAULTS[name]
            assert isinstance(default, int | float)
            text = raw(name)
            if text is None:
                return default
            low, high = BOUNDS[name]
            try:
                value = kind(text)
            except ValueError:
                problems.append(f"{_PREFIX}{name.upper()}={text!r} is not a number")
                return default
            if not low <= value <= high:
                problems.append(f"{_PREFIX}{name.upper()}={text!r} is outside [{low}, {high}]")
                return default
            return value

        context = True
        text = raw("hook_context")
        if text is not None:
            if text.lower() in _TRUE:
                context = True
            elif text.lower() in _FALSE:
                context = False
            else:
                problems.append(f"{_PREFIX}HOOK_CONTEXT={text!r} is not a boolean")
        directory = raw("hook_dir") or default_dir(env)
        return cls(
            os.path.abspath(os.path.expanduser(directory)),
            spool_max_bytes=int(number("hook_spool_max_bytes", int)),
            context=context,
            context_budget_ms=int(number("hook_context_budget_ms", int)),
            context_ttl_seconds=float(number("hook_context_ttl_seconds", float)),
            idle_seconds=float(number("hook_idle_seconds", float)),
            problems=tuple(problems),
        )
