"""Run Rasa with Concierge's speed-ups installed (:mod:`rasa_addons.speedups`).

``python -m bot run`` starts Rasa this way; the arguments are Rasa's own.

Usage (from the project root, with Rasa's environment):
    .venv-rasa/bin/python -m rasa_addons run --enable-api --model var/models/concierge.tar.gz
"""

from __future__ import annotations


def main() -> None:
    """Install the speed-ups, then hand over to Rasa's command line."""
    from rasa_addons.speedups import install

    install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
