#!/usr/bin/env python3
"""Install r1track's plugins into upstream checkouts (same as ``r1track install``).

    python install_plugins.py --llamafactory ~/LLaMA-Factory --easyr1 ~/EasyR1 --pytracking ~/pytracking
    python install_plugins.py --help

Run it with the Python of the framework's environment: it checks that ``import r1track`` works there and
says how to install it if not. It needs nothing but the standard library.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from r1track.commands.install import DESCRIPTION, add_arguments, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="install_plugins.py", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
