"""The read-only web view (``debug-sink ui``): workflows, their waterfalls, errors with their
recoveries and state diffs, known fixes, dead letters and the sinks' live figures.

One module per concern, top to bottom: :mod:`.server` (the component that serves),
:mod:`.app` (routes, middlewares, error pages), :mod:`.pages` (one handler per page),
:mod:`.security` (who may look, and the headers), and the pure helpers the pages use:
:mod:`.waterfall`, :mod:`.statediff`, :mod:`.formatting`, :mod:`.live`. Templates and static
files are package data (``templates/``, ``static/``).
"""
