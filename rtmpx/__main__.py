"""The ``rtmpx`` command line (also ``python -m rtmpx``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .errors import RtmpError


def _amf_encode(args: argparse.Namespace) -> int:
    from . import amf

    values = [json.loads(text) for text in args.json]
    data = amf.dumps_all(values, version=args.amf_version)
    print(data.hex(" "))
    return 0


def _amf_decode(args: argparse.Namespace) -> int:
    from . import amf

    data = bytes.fromhex("".join(args.hex))
    for value in amf.loads_all(data, version=args.amf_version):
        print(repr(value))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rtmpx`` command."""
    parser = argparse.ArgumentParser(
        prog="rtmpx", description="Fast, typed RTMP for Python.")
    parser.add_argument("--version", action="version", version=f"rtmpx {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    amf_parser = commands.add_parser("amf", help="encode or decode AMF0/AMF3 values")
    amf_commands = amf_parser.add_subparsers(dest="amf_command", required=True, metavar="ACTION")
    enc = amf_commands.add_parser("encode", help="JSON values -> AMF bytes (hex)")
    enc.add_argument("json", nargs="+", help="one JSON value per argument")
    enc.set_defaults(func=_amf_encode)
    dec = amf_commands.add_parser("decode", help="AMF bytes (hex) -> Python values")
    dec.add_argument("hex", nargs="+", help="hex digits, spaces allowed")
    dec.set_defaults(func=_amf_decode)
    for sub in (enc, dec):
        sub.add_argument("--amf-version", type=int, choices=(0, 3), default=0,
                         help="AMF0 (default) or AMF3")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rtmpx`` command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (RtmpError, ValueError) as exc:
        print(f"rtmpx: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
