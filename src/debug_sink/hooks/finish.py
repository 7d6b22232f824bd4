"""Spooled events made ready to send: redacted, within the sink's limits, validated.

Owns :class:`Finisher`, which the shipper runs on every spooled record before it goes to
Kafka: the event's JSON fields through the SDK's
:class:`~debug_sink.sdk.sanitize.Sanitizer` (plain JSON, NUL-free, secrets redacted by key and
by value, within the sink's size and depth limits, else the visible truncation marker; the
state hash of a snapshot), its free text redacted and bounded, its names fitted to their
columns, then the wire model built -- so that what leaves the machine holds no secret the sink
would redact and the sink finds nothing to reject.

Guarantees: :meth:`Finisher.finish` returns the model, or raises :class:`Unfinished` saying
why (an unknown kind, a field the model refuses) without quoting the event's content.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import ValidationError

from debug_sink.sdk.sanitize import Sanitizer, fit, free_text, max_length
from debug_sink.settings import Settings
from debug_sink.wire.events import EventBase, EventKind

__all__ = ["Finisher", "Unfinished"]

#: Free-text fields: redacted by value and cut at the SDK's text limit.
_TEXT_FIELDS: Final = frozenset(
    {"error_message", "error_stack_trace", "step_description", "reason", "task_description"}
)


class Unfinished(ValueError):
    """A spooled record that cannot become an event (the reason names no content)."""


class Finisher:
    """Turns spooled ``(kind, event JSON)`` into wire models under ``settings``' limits."""

    def __init__(self, settings: Settings) -> None:
        self._redactor = settings.redactor()
        self._sanitizer = Sanitizer(
            self._redactor,
            max_state_bytes=settings.max_state_bytes,
            max_depth=settings.max_depth,
        )

    def finish(self, kind: str, event: dict[str, Any]) -> EventBase:
        try:
            model = EventKind(kind).model
        except ValueError:
            raise Unfinished(f"unknown event kind {kind[:40]!r}") from None
        values = dict(event)
        for name in model.JSON_FIELDS:
            if name not in values:
                continue
            if name == "agent_state":
                state = values[name] if isinstance(values[name], dict) else {"value": values[name]}
                values[name], values["state_hash"] = self._sanitizer.state(state)
            else:
                values[name] = self._sanitizer.json_field(values[name])
        for name, value in list(values.items()):
            if not isinstance(value, str) or name not in model.model_fields:
                continue
            if name in _TEXT_FIELDS:
                redacted, _ = self._redactor.redact_text(value)
                values[name] = free_text(redacted)
            elif _bounded(model, name):
                values[name] = fit(model, name, value)
        try:
            return model.model_validate(values)
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise Unfinished(f"{model.__name__} refuses {', '.join(fields)[:200]}") from None


def _bounded(model: type[EventBase], name: str) -> bool:
    try:
        max_length(model, name)
    except LookupError:
        return False
    return True
