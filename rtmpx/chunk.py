"""The RTMP chunk stream: :class:`Message`, :class:`ChunkReader`, :class:`ChunkWriter`, :func:`default_csid`.

Re-exports the compiled :mod:`rtmpx._chunk` (or, with
``RTMPX_PUREPYTHON=1``, the pure twin :mod:`rtmpx._chunk_py`); see the
twin's docstring for the full API and limits.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if not TYPE_CHECKING and os.environ.get("RTMPX_PUREPYTHON") == "1":
    from ._chunk_py import ChunkReader, ChunkWriter, Message, default_csid
else:
    from ._chunk import ChunkReader, ChunkWriter, Message, default_csid

__all__ = ["ChunkReader", "ChunkWriter", "Message", "default_csid"]
