"""The ``serve`` subcommand's arguments; the server itself is imported only when it runs."""

from __future__ import annotations

from seqapps.core.commands import Command, at_least_one, number, port, positive_int
from seqapps.http.costs import parse_bound


def add_arguments(p):
    p.add_argument("path", help="a folder of exports (each served under its folder name) or one export")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=port, default=8501, help="HTTP port (default: 8501, as TF Serving's REST)")
    p.add_argument("--batching", choices=["on", "off"], default="on",
                   help="gather concurrent requests for a signature into one call (default: on)")
    p.add_argument("--max-batch-size", type=at_least_one, default=64, help="rows per gathered call (default: 64)")
    p.add_argument("--batch-timeout-ms", type=number(0), default=2.0,
                   help="how long a request waits for others to join its call (default: 2)")
    p.add_argument("--max-body-mb", type=number(0, above=True), default=10.0, help="largest request body accepted (default: 10)")
    p.add_argument("--bound", type=parse_bound, action="append", metavar="NAME=VALUE",
                   help="lower one of the exports' per-call bounds for requests (repeatable; e.g. text_bytes=20000; "
                        "the names and defaults are in docs/serving.md)")
    p.add_argument("--poll-seconds", type=number(0), default=1.0,
                   help="how often the folder is checked for new or replaced exports (default: 1; 0: never)")
    p.add_argument("--threads", type=at_least_one, default=2,
                   help="model calls that run at once, each on its own thread (default: 2)")
    p.add_argument("--intra-op-threads", type=positive_int, default=1,
                   help="threads one TensorFlow op may use (default: 1; 0: TensorFlow chooses)")
    p.add_argument("--inter-op-threads", type=positive_int, default=0,
                   help="TensorFlow ops that may run at once, over all calls (default: 0, TensorFlow chooses: "
                        "one per core)")


def run(args):
    from seqapps.http.app import serve

    serve(args)


SERVE = Command("serve", "serve exports over HTTP: TensorFlow Serving's REST API and a page per model",
                add_arguments, run)
