"""Command line: ``python -m seqapps train|evaluate|export|predict|tasks|datasets``.

Errors in what the user typed or pointed at print one line and exit with code 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null.

    TensorFlow's C++ side writes a few notices while it loads (absl's "log messages
    before absl::InitializeLog()", oneDNN's "custom operations are on") whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says, so a command that fails on bad input would print
    them above its one error line. ``TF_CPP_MIN_LOG_LEVEL=0`` keeps them. A failed
    import still raises, and its traceback prints once stderr is back."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") == "0":
        import tensorflow  # noqa: F401
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            try:
                import tensorflow  # noqa: F401
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


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

    p = sub.add_parser("generate", help="generate text with a char_lm export (or run directory)")
    p.add_argument("path")
    p.add_argument("--prime", default="", help="text to continue (default: empty, as after a line break)")
    p.add_argument("--length", type=_positive_int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="0 picks the most likely character")
    p.add_argument("--top-k", type=_positive_int, default=0, help="sample among the k most likely (0: off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    p.add_argument("--seed", type=int, help="the same seed gives the same text")

    p = sub.add_parser("inspect", help="colour a text by a recurrent unit's activation (char_lm)")
    p.add_argument("path", help="char_lm run directory or export")
    p.add_argument("--text", required=True, help="UTF-8 text file to read through the model")
    p.add_argument("--find", choices=["quotes", "line-position", "indent"],
                   help="rank the units by how well they track this, and show the best")
    p.add_argument("--unit", type=_positive_int, help="unit to colour by (default: the best found, else 0)")
    p.add_argument("--layer", type=_positive_int, default=1)
    p.add_argument("--state", choices=["hidden", "cell"], default="hidden", help="cell: the LSTM cell state")
    p.add_argument("--top", type=_positive_int, default=10, help="units to list with --find")
    p.add_argument("--max-chars", type=_positive_int, default=20000, help="read at most this many characters")
    p.add_argument("--out", default="inspect", help="folder for inspect.html, inspect.png, states.npz")

    p = sub.add_parser("diagnose", help="gradient norm through time for rnn/lstm/gru cells")
    p.add_argument("what", choices=["gradients"])
    p.add_argument("--cells", default="rnn,lstm,gru")
    p.add_argument("--length", type=_positive_int, default=100, help="steps unrolled")
    p.add_argument("--units", type=_positive_int, default=64)
    p.add_argument("--scales", default="1,2", help="factors on the recurrent weights, e.g. 1,2,4")
    p.add_argument("--clip", type=float, default=1.0, help="global-norm clipping shown beside (0: off)")
    p.add_argument("--input-scale", type=float, default=1.0, help="standard deviation of the random inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="diagnose", help="folder for gradients.csv and gradients.png")

    sub.add_parser("tasks", help="list the tasks")
    p = sub.add_parser("datasets", help="list the named datasets")
    p.add_argument("--data-dir")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import_tensorflow_quietly()
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
    from seqapps.training import resolve_config, train

    data = args.data
    resolve_config(registry.get(args.task), data, overrides=args.overrides)  # bad options fail first
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
    out.mkdir(parents=True, exist_ok=True)
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


def cmd_generate(args):
    from seqapps.errors import SeqappsError
    from seqapps.predict import load

    predictor = load(args.path)
    if not hasattr(predictor, "generate"):
        raise SeqappsError(f"{args.path}: a {predictor.task.name} model does not generate text; "
                           "expected a char_lm run or export")
    print(args.prime + predictor.generate(args.prime, length=args.length, temperature=args.temperature,
                                          top_k=args.top_k, top_p=args.top_p, seed=args.seed))


def cmd_inspect(args):
    from seqapps.inspect import inspect

    result = inspect(args.path, args.text, args.out, unit=args.unit, layer=args.layer, state=args.state,
                     find=args.find, top=args.top, max_chars=args.max_chars)
    if result["ranking"]:
        print(f"units tracking {args.find} (Pearson r over {result['chars']} characters):")
        _table(["state", "layer", "unit", "r"],
               [(u["state"], u["layer"], u["unit"], f"{u['r']:+.3f}") for u in result["ranking"]])
    shown = result["shown"]
    print(f"coloured by layer {shown['layer']} {shown['state']} unit {shown['unit']}")
    for path in result["written"].values():
        print(f"wrote {path}")


def cmd_diagnose(args):
    from seqapps.diagnose import diagnose_gradients, summary
    from seqapps.errors import ConfigError

    try:
        scales = [float(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--scales expects numbers separated by commas, e.g. 1,2,4; got {args.scales!r}") from None
    results = diagnose_gradients(args.cells.split(","), args.length, scales or [1.0], args.clip, args.out,
                                 units=args.units, seed=args.seed, input_scale=args.input_scale)
    print("\n".join(summary(results)))
    print(f"wrote {args.out}/gradients.csv\nwrote {args.out}/gradients.png")


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "export": cmd_export, "predict": cmd_predict,
            "tasks": cmd_tasks, "datasets": cmd_datasets, "generate": cmd_generate, "inspect": cmd_inspect,
            "diagnose": cmd_diagnose}
