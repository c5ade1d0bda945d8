"""Entry point for ``python -m knowledge``: the knowledge-base editor CLI."""

import sys

from knowledge.editor import main

if __name__ == "__main__":
    sys.exit(main())
