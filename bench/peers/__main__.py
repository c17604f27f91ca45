"""``python -m bench.peers``: run the side-by-side suite (see ``_cli``)."""

from __future__ import annotations

import sys

from bench.peers._cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
