"""AMF encode/decode benchmarks: rtmpx compiled vs pure twin vs Py3AMF-Cython.

    python3 -m pytest bench/bench_amf.py --benchmark-only --benchmark-group-by=param:case,param:version,param:op

Py3AMF with its Cython extension: ``pip install --no-binary Py3AMF Py3AMF
--config-settings=py3amf.ext.cython=1``.  ``python3 bench/amf_table.py``
prints the README table (ops/s and ratios from one process).
"""

from __future__ import annotations

import pytest
from amf_cases import CASES, codecs, inputs

CODECS = codecs()


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("version", [0, 3])
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("op", ["encode", "decode"])
def test_amf(benchmark, codec: str, case: str, version: int, op: str) -> None:
    encode, decode = CODECS[codec]
    values, data = inputs(codec, case, version)
    if op == "encode":
        out = benchmark(encode, values, version)
        assert out == data
    else:
        out = benchmark(decode, data, version)
        assert len(out) == len(values)
