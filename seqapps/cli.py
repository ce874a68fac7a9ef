"""Command line: ``python -m seqapps train|evaluate|export|predict|tasks|datasets``.

Errors in what the user typed or pointed at print one line and exit with code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m seqapps", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a task by name")
    p.add_argument("task")
    p.add_argument("--data", help="demo | a named dataset | a path | tfds:NAME (default: the task's own)")
    p.add_argument("--data-dir", help="where named datasets live (default: $SEQAPPS_DATA)")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. model.cell=gru (repeatable)")
    p.add_argument("--run-dir", help="where the run is written (default: runs/<task>-<data>)")
    p.add_argument("--strategy", choices=["default", "mirrored", "multiworker"])
    p.add_argument("--overwrite", action="store_true", help="delete an existing run directory first")

    p = sub.add_parser("evaluate", help="score a run or an export on a dataset")
    p.add_argument("path", help="run directory or export")
    p.add_argument("--data", help="dataset to score on (default: the one it was trained on)")
    p.add_argument("--data-dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", help="folder for plots (default: the run or export folder)")
    p.add_argument("--plot", action="store_true", help="also write the task's extra plots (attention maps...)")

    p = sub.add_parser("export", help="write a raw-input SavedModel from a run")
    p.add_argument("run_dir")
    p.add_argument("out_dir")

    p = sub.add_parser("predict", help="predict with an export (or a run directory)")
    p.add_argument("path")
    p.add_argument("inputs", nargs="*", help="inputs; none reads --input or stdin, one per line")
    p.add_argument("--input", help="file with one input per line")

    sub.add_parser("tasks", help="list the tasks")
    p = sub.add_parser("datasets", help="list the named datasets")
    p.add_argument("--data-dir")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from seqapps.errors import SeqappsError

    try:
        return COMMANDS[args.command](args) or 0
    except SeqappsError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_train(args):
    from seqapps import registry
    from seqapps.data import catalog
    from seqapps.training import train

    data = args.data
    if data is None:
        task = registry.get(args.task)
        entry = catalog.CATALOG.get(task.default_data)
        if entry is not None and not entry.available(catalog.data_dir(args.data_dir)):
            print(f"note: {task.default_data} is not under the data directory ($SEQAPPS_DATA or --data-dir); "
                  "training on the built-in demo data", file=sys.stderr)
            data = "demo"
    train(args.task, data, epochs=args.epochs, batch_size=args.batch_size, overrides=args.overrides,
          run_dir=args.run_dir, data_dir=args.data_dir, strategy=args.strategy, overwrite=args.overwrite)


def cmd_evaluate(args):
    import json
    from pathlib import Path

    from seqapps.predict import load

    predictor = load(args.path)
    task = predictor.task
    cfg = task.config_class.from_dict(predictor.metadata["config"])
    if args.data:
        cfg.data.source = args.data
    splits = task.load_data(cfg, args.data_dir)
    examples = getattr(splits, args.split)
    if examples is None:
        from seqapps.errors import DataError

        raise DataError(f"{cfg.data.source} has no {args.split} split")
    out = Path(args.out or args.path)
    metrics = task.evaluate(predictor, examples, cfg, out_dir=out, plot=args.plot)
    print(task.format_metrics(metrics))
    (out / f"evaluation-{args.split}.json").write_text(json.dumps(metrics, indent=2) + "\n")


def cmd_export(args):
    from seqapps.export import export

    print(f"exported {export(args.run_dir, args.out_dir)}")


def cmd_predict(args):
    from seqapps.predict import load

    predictor = load(args.path)
    for line in predictor.cli_predict(list(args.inputs), args.input):
        print(line)


def cmd_tasks(args):
    from seqapps import registry

    rows = [(t.name, t.topology, t.default_data, t.description) for t in registry.all_tasks()]
    _table(["task", "topology", "default data", "description"], rows)


def cmd_datasets(args):
    from seqapps.data import catalog

    root = catalog.data_dir(args.data_dir)
    rows = [(d.name, d.task, "yes" if d.available(root) else "no", d.description) for d in catalog.CATALOG.values()]
    rows.append(("demo", "every task", "yes", "small built-in data for quick runs and tests"))
    _table(["dataset", "task", "available", "description"], rows)
    print(f"\ndata directory: {root if root else 'not set (set $SEQAPPS_DATA or pass --data-dir)'}")
    print("also: any local file or folder path, or tfds:NAME (downloads once, needs internet)")


def _table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "export": cmd_export, "predict": cmd_predict,
            "tasks": cmd_tasks, "datasets": cmd_datasets}
