"""Claude Code hooks into debug-sink, and known fixes back to the agent.

The hook command (``debug-sink-hook``, also ``debug-sink hook``) is what a user puts in
``.claude/settings.json``: for each hook event Claude Code runs it with the event's JSON on
stdin. It maps the event to debug events (:mod:`.mapping`, :mod:`.classify`), appends them to
a bounded local spool (:mod:`.spool`) and returns; a background shipper (:mod:`.shipper`, one
per hook directory, started on demand) sends the spool to Kafka and answers known-fixes
lookups from PostgreSQL, which the command prints for a failed tool (:mod:`.fixes`).
:mod:`.agent_sdk` registers the same handling as Claude Agent SDK hook callbacks.

The command's path (:mod:`.command`, :mod:`.handler` and what they import) uses the standard
library only, so that it starts fast; the shipper and the administration (:mod:`.admin`) use
the rest of debug-sink.
"""
