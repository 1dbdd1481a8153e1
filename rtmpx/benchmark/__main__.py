"""``python3 -m rtmpx.benchmark``: the same as ``rtmpx bench``."""

from __future__ import annotations

import argparse
import sys

from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    """Parse the ``rtmpx bench`` options and run it."""
    parser = argparse.ArgumentParser(prog="rtmpx bench", description=__doc__)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except (ValueError, OSError) as exc:
        print(f"rtmpx bench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
