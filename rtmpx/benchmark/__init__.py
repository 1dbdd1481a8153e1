"""``rtmpx bench``: rtmpx next to nginx-rtmp under the same load, as ratios.

* :mod:`~rtmpx.benchmark.runner`: the servers under test (rtmpx and
  nginx-rtmp with a generated configuration, on free ports), process
  measurements (CPU from ``/proc/PID/stat``, RSS), FFmpeg and its samples.
* :mod:`~rtmpx.benchmark.load`: the lean load generator, a process of its
  own (``python3 -m rtmpx.benchmark.load SPEC``) on rtmpx's sans-I/O core:
  publishers sending pre-chunked FLV tags, players counting bytes.
* :mod:`~rtmpx.benchmark.sink`: the ingest-into-Python consumers (rtmpx
  ``Server.publishes()`` and PyAV), a process of their own.
* :mod:`~rtmpx.benchmark.scenarios`: the scenarios and the A B A B runs.
* :mod:`~rtmpx.benchmark.report`: medians, ratios, the table and the JSON.

Everything runs on 127.0.0.1 and every process started is stopped at the
end, also on errors and Ctrl-C.
"""

from __future__ import annotations

__all__: list[str] = []
