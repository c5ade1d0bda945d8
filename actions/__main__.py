"""``python -m actions``: the rasa-sdk action server for ``actions/``, in one process.

rasa-sdk's own ``python -m rasa_sdk`` always starts Sanic's worker manager, even for one
worker: a manager process (about 80 MB resident) and two multiprocessing helpers (about
30 MB) beside the worker that answers (about 220 MB with the ONNX query encoder and the
index), 330–340 MB for the tree. With one worker (``ACTION_SERVER_SANIC_WORKERS`` unset
or 1, the default profile) this entry point serves the very same app, built by rasa-sdk's
``create_app_for_serve`` (its routes, plugins and tracing), in a single process with
Sanic's ``serve_single``: nothing to orphan when the process is killed, and only the
worker's memory. With more workers, gRPC or auto-reload it hands over to rasa-sdk's own
start-up unchanged. It takes rasa-sdk's command-line flags.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

from rasa_sdk import utils
from rasa_sdk.__main__ import main_from_args
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
from rasa_sdk.endpoint import create_app_for_serve, create_argument_parser, create_ssl_config
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the action server (one process unless several workers are asked for)."""
    args = create_argument_parser().parse_args(argv)
    if utils.number_of_sanic_workers() > 1 or args.grpc or args.auto_reload:
        main_from_args(args)
        return
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(
        logging.getLogger(APPLICATION_ROOT_LOGGER_NAME),
        args.log_file,
        args.loglevel,
        args.logging_config_file,
    )
    utils.update_sanic_log_level()
    executor = ActionExecutor()
    executor.register_package(args.actions_module or args.actions)
    app = create_app_for_serve(
        executor, cors_origins=args.cors, auto_reload=False, endpoints=args.endpoints
    )
    host = os.environ.get("SANIC_HOST", "127.0.0.1")
    ssl = create_ssl_config(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    logger.info("Action endpoint is up and running on %s:%s (one process)", host, args.port)
    app.prepare(host=host, port=args.port, ssl=ssl, single_process=True)
    Sanic.serve_single(primary=app)


if __name__ == "__main__":
    main()
