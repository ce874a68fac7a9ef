"""Command line: ``python -m seqapps train|prepare|evaluate|export|predict|serve|tasks|datasets|diagnose``.

Tasks add their own subcommands (char_lm: ``generate``, ``inspect``) through
``Task.cli_commands()``. Errors in what the user typed or pointed at print one line
and exit with code 2; ``--debug`` (before or after the subcommand) shows the traceback.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys

from seqapps.core.commands import at_least_one as _at_least_one
from seqapps.core.config import CHOICES
from seqapps.core.commands import positive_int as _whole  # 0 reaches the config check, which names the key
from seqapps.core.commands import table as _table
from seqapps.http.command import SERVE

# TensorFlow's C++ log lines (oneDNN notices, "E0000 ... Premature end of JPEG data" per request) are
# for developers: hidden unless --debug asks for everything; errors reach the user as exceptions
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if "--debug" in sys.argv[1:] else "3")


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


def build_parser(task_commands=()) -> argparse.ArgumentParser:
    """The parser for the built-in commands plus ``task_commands`` (:class:`seqapps.core.commands.Command`)."""
    parser = _Parser(prog="python -m seqapps", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    debug = _Parser(add_help=False)  # --debug after the subcommand too; SUPPRESS keeps one given before it
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add = functools.partial(sub.add_parser, parents=[debug])

    recipe = _Parser(add_help=False)  # what picks the training: train's and prepare's own arguments
    recipe.add_argument("task")
    recipe.add_argument("--data", help="demo | a named dataset | a path | tfds:NAME | for train, a folder `prepare` "
                                       "wrote (default: the task's own)")
    recipe.add_argument("--data-dir", help="where named datasets live (default: $SEQAPPS_DATA)")
    recipe.add_argument("--epochs", type=_whole)
    recipe.add_argument("--batch-size", type=_whole)
    recipe.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. model.cell=gru (repeatable)")
    recipe.add_argument("--preset", help="a named recipe of the task (see `presets`; default: the recipe of the "
                                         "--data dataset if it has one; none: the task defaults)")

    p = add("train", help="train a task by name", parents=[debug, recipe])
    p.add_argument("--run-dir", help="where the run is written (default: runs/<task>-<data>)")
    p.add_argument("--strategy", choices=CHOICES["train.strategy"])
    p.add_argument("--no-eval", action="store_true", help="skip scoring the validation and test splits at the end")
    p.add_argument("--backend", choices=[b for b in CHOICES["train.backend"] if b],
                   help="the Keras backend that trains (default: the dataset's, else tensorflow); exports always "
                        "use TensorFlow")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run directory first")

    p = add("prepare", help="write a task's batches as arrays, to train where TensorFlow is not installed",
            parents=[debug, recipe])
    p.add_argument("--backend", choices=[b for b in CHOICES["train.backend"] if b], default="jax",
                   help="the Keras backend the folder will train on (default: jax)")
    p.add_argument("--out", help="the folder to write (default: prepared/<task>-<data>)")
    p.add_argument("--shard-mb", type=float, default=64, help="the size of a shard file in MB (default: 64); a "
                                                             "multi-worker training needs a shard an epoch per worker")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")

    p = add("evaluate", help="score a run or an export on a dataset")
    p.add_argument("path", help="run directory or export")
    p.add_argument("--data", help="dataset to score on (default: the one it was trained on)")
    p.add_argument("--data-dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--out", help="folder for plots (default: the run or export folder)")
    p.add_argument("--plot", action="store_true", help="also write the task's extra plots (attention maps...)")

    p = add("export", help="write a raw-input SavedModel (or an ONNX or LiteRT graph and its tokenizer) from a run")
    p.add_argument("run_dir")
    p.add_argument("out_dir")
    p.add_argument("--format", default="savedmodel", choices=["savedmodel", "onnx", "litert"],
                   help="savedmodel (default: raw inputs in the graph), onnx or litert (ids in the graph, tokenizer "
                        "beside it, answered by ONNX Runtime or the LiteRT runtime without TensorFlow)")
    p.add_argument("--quantize", default="none", choices=["none", "int8", "float16", "int8-full"],
                   help="onnx and litert only: int8 (dynamic-range int8 weights), float16 weights, none (float32), "
                        "or int8-full (litert, pos: int8 activations calibrated on 100 training inputs)")

    p = add("predict", help="predict with an export (or a run directory)")
    p.add_argument("path")
    p.add_argument("inputs", nargs="*", help="inputs; none reads --input or stdin, one per line")
    p.add_argument("--input", help="file with one input per line")

    p = add("diagnose", help="look inside cells: gradient norm through time, long-range memory")
    which = p.add_subparsers(dest="what", metavar="{gradients,memory}", required=True)
    p = which.add_parser("gradients", help="gradient norm through time for fresh rnn/lstm/gru cells")
    p.add_argument("--cells", default="rnn,lstm,gru")
    p.add_argument("--length", type=_at_least_one, default=100, help="steps unrolled")
    p.add_argument("--units", type=_at_least_one, default=64)
    p.add_argument("--scales", default="1,2", help="factors on the recurrent weights, e.g. 1,2,4")
    p.add_argument("--clip", type=float, default=1.0, help="global-norm clipping shown beside (0: off)")
    p.add_argument("--input-scale", type=float, default=1.0, help="standard deviation of the random inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="diagnose", help="folder for gradients.csv and gradients.png")
    p = which.add_parser("memory", help="the longest lag rnn/lstm/gru/transformer solve on copy, adding, recall")
    p.add_argument("--tasks", default="copy,adding,recall", help="copy, adding, recall (comma-separated)")
    p.add_argument("--cells", default="rnn,lstm,gru,transformer", help="rnn, lstm, gru, transformer")
    p.add_argument("--lags", default="10,20,50,100,200,500", help="delays T, e.g. 10,20,50")
    p.add_argument("--steps", type=_at_least_one, default=2000, help="training steps at most per task, model and lag")
    p.add_argument("--batch", type=_at_least_one, default=32)
    p.add_argument("--params", type=_at_least_one, default=6000, help="parameters per model (widths chosen to match)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--clip", type=float, default=1.0, help="global-norm gradient clipping (0: off)")
    p.add_argument("--forget-bias", type=float, default=1.0, help="LSTM forget gate's initial bias (0: off)")
    p.add_argument("--eval-every", type=_at_least_one, default=100, help="steps between held-out checks")
    p.add_argument("--eval-examples", type=_at_least_one, default=500, help="held-out examples per check")
    p.add_argument("--copy-symbols", type=_at_least_one, default=10, help="symbols to copy (10 in the literature)")
    p.add_argument("--transformer-layers", type=_at_least_one, default=2)
    p.add_argument("--budget-minutes", type=float, default=0.0, help="start no run after this long (0: no limit)")
    p.add_argument("--all-lags", action="store_true", help="also train lags longer than one a model failed")
    p.add_argument("--no-gradients", action="store_true", help="skip the gradient curves through time")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="diagnose", help="folder for memory.csv/json/png")

    SERVE.add_arguments(add(SERVE.name, help=SERVE.help))

    add("tasks", help="list the tasks")
    p = add("presets", help="list the tasks' named recipes (train TASK --preset NAME)")
    p.add_argument("task", nargs="?", help="only this task's")
    p = add("datasets", help="list the named datasets")
    p.add_argument("--data-dir")
    for command in task_commands:
        command.add_arguments(add(command.name, help=command.help))
    return parser


def task_commands() -> list:
    """Every task's own subcommands (each once, however many tasks offer it)."""
    from seqapps.core import registry

    found = {}
    for task in registry.all_tasks():
        for command in task.cli_commands():
            if command.name in COMMANDS or found.get(command.name, command) != command:
                raise RuntimeError(f"task {task.name} adds a subcommand {command.name!r} that already exists")
            found[command.name] = command
    return list(found.values())


def _wants_task_commands(argv) -> bool:
    """False when the subcommand is a built-in one: those run without importing every task."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return command not in COMMANDS


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    if next((a for a in argv if not a.startswith("-")), None) != "train":
        from seqapps.training import backends as engine

        engine.select("tensorflow")  # serving graphs, exports and predictors are TensorFlow; train picks its own
    extra = []
    if _wants_task_commands(argv):
        import_tensorflow_quietly()  # the task modules import it
        extra = task_commands()
    args = build_parser(extra).parse_args(argv)
    if not _trains_prepared(args):  # a prepared folder trains where TensorFlow is not installed
        import_tensorflow_quietly()
    from seqapps.core.errors import SeqappsError

    run = COMMANDS.get(args.command) or next(c.run for c in extra if c.name == args.command)
    if args.command in ("train", "prepare"):  # a scheduler's SIGTERM stops them as Ctrl-C does, with the same line
        signal.signal(signal.SIGTERM, _terminated)
    try:
        return run(args) or 0
    except SeqappsError as e:
        if args.debug:
            raise
        report = os.environ.get("SEQAPPS_ERROR_FILE")
        if report:  # a child of seqapps.training.backends.run_elsewhere: the parent reports the error, once
            with open(report, "w", encoding="utf-8") as f:
                f.write(f"{type(e).__name__}\t{e}")
        else:
            print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        resumes = "; the same command resumes it from its last backup" if args.command == "train" else ""
        print(f"interrupted{resumes}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python next runs (between two training steps at the latest)."""


def _terminated(signum, frame):
    raise Terminated()


def _trains_prepared(args) -> bool:
    from seqapps.training.prepared import is_prepared

    return args.command == "train" and is_prepared(args.data)


def cmd_train(args):
    from seqapps.training import backends as engine

    if _trains_prepared(args):
        return _train_prepared(args)
    backend = args.backend or _override(args.overrides, "train.backend") or engine.default_backend(args.task, args.data)
    engine.select(engine.check_backend(backend))  # before anything imports Keras
    from seqapps.core import registry
    from seqapps.training.fit import resolve_config, train

    data = args.data
    resolve_config(registry.get(args.task), data, epochs=args.epochs, batch_size=args.batch_size,
                   overrides=args.overrides, strategy=args.strategy, preset=args.preset)  # bad options fail first
    train(args.task, data, backend=args.backend, preset=args.preset, evaluate=not args.no_eval,
          epochs=args.epochs, batch_size=args.batch_size, overrides=args.overrides,
          run_dir=args.run_dir, data_dir=args.data_dir, strategy=args.strategy, overwrite=args.overwrite)


def _train_prepared(args):
    from seqapps.training import prepared

    prepared.train_api(args.task, args.data, run_dir=args.run_dir, backend=args.backend, overwrite=args.overwrite,
                       evaluate=not args.no_eval, strategy=args.strategy, flags=True, overrides=args.overrides,
                       preset=args.preset, epochs=args.epochs, batch_size=args.batch_size, data_dir=args.data_dir)


def cmd_prepare(args):
    from seqapps.training.prepared import prepare

    out = prepare(args.task, args.data, args.out, epochs=args.epochs, batch_size=args.batch_size,
                  overrides=args.overrides, preset=args.preset, data_dir=args.data_dir, backend=args.backend,
                  overwrite=args.overwrite, shard_mb=args.shard_mb)
    print(f"prepared {out}; train it with: python -m seqapps train {args.task} --data {out} --backend {args.backend}")


def _override(overrides, key):
    """The last ``--set KEY=VALUE`` for ``key``, before any config is built."""
    values = [o.split("=", 1)[1].strip() for o in overrides if o.split("=", 1)[0].strip() == key and "=" in o]
    return values[-1] if values else None


def cmd_evaluate(args):
    import json
    from pathlib import Path

    from seqapps.inference.loading import load

    predictor = load(args.path)
    task = predictor.task
    cfg = task.config_class.from_dict(predictor.metadata["config"])
    if args.data:
        cfg.data.source = args.data
    splits = task.load_data(cfg, args.data_dir)
    examples = getattr(splits, args.split)
    if examples is None:
        from seqapps.core.errors import DataError

        raise DataError(f"{cfg.data.source} has no {args.split} split")
    out = Path(args.out or args.path)
    out.mkdir(parents=True, exist_ok=True)
    from seqapps.core.task import whole

    metrics = task.evaluate(predictor, whole(examples), cfg, out_dir=out, plot=args.plot)
    print(task.format_metrics(metrics))
    (out / f"evaluation-{args.split}.json").write_text(json.dumps(metrics, indent=2) + "\n")


def cmd_export(args):
    from seqapps.inference.export import export

    print(f"exported {export(args.run_dir, args.out_dir, args.format, args.quantize)}")


def cmd_predict(args):
    from seqapps.inference.loading import load

    from seqapps.core.errors import DataError

    for k, text in enumerate(args.inputs, 1):  # the shell hands over bytes; Python keeps undecodable ones escaped
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise DataError(f"input {k} is not UTF-8 text (undecodable byte at offset {e.start}); pass UTF-8, or "
                            "put the inputs in a file given with --input") from None
    predictor = load(args.path)
    for line in predictor.cli_predict(list(args.inputs), args.input):
        print(line)


def cmd_presets(args):
    from seqapps.core import presets, registry

    tasks = [registry.get(args.task)] if args.task else registry.all_tasks()
    _table(["task", "preset", "default for", "recipe"], presets.rows(tasks))
    print("\na preset whose 'default for' is a dataset is used when training that dataset; --preset none keeps "
          "the task defaults")


def cmd_tasks(args):
    from seqapps.core import registry

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


def cmd_diagnose(args):
    from seqapps.core.errors import ConfigError

    if args.what == "memory":
        return _diagnose_memory(args)
    from seqapps.analysis.diagnose import diagnose_gradients, summary

    try:
        scales = [float(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--scales expects numbers separated by commas, e.g. 1,2,4; got {args.scales!r}") from None
    results = diagnose_gradients(args.cells.split(","), args.length, scales or [1.0], args.clip, args.out,
                                 units=args.units, seed=args.seed, input_scale=args.input_scale)
    print("\n".join(summary(results)))
    print(f"wrote {args.out}/gradients.csv\nwrote {args.out}/gradients.png")


def _diagnose_memory(args):
    from seqapps.analysis import memory
    from seqapps.core.errors import ConfigError

    try:
        lags = [int(s) for s in args.lags.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--lags expects whole numbers separated by commas, e.g. 10,20,50; got {args.lags!r}") from None
    settings = memory.Settings(steps=args.steps, batch=args.batch, lr=args.lr, clip=args.clip,
                               forget_bias=args.forget_bias, params=args.params, eval_every=args.eval_every,
                               eval_examples=args.eval_examples, copy_symbols=args.copy_symbols,
                               transformer_layers=args.transformer_layers, seed=args.seed)
    rows = memory.diagnose_memory(args.tasks.split(","), args.cells.split(","), lags, settings, args.out,
                                  budget_minutes=args.budget_minutes, all_lags=args.all_lags,
                                  gradients=not args.no_gradients)
    print("\n".join(memory.summary(rows)))
    names = ["memory.csv", "memory.json", "memory.png"] + ([] if args.no_gradients else ["memory_gradients.png"])
    print("\n".join(f"wrote {args.out}/{n}" for n in names))


COMMANDS = {"train": cmd_train, "prepare": cmd_prepare, "evaluate": cmd_evaluate, "export": cmd_export, "predict": cmd_predict,
            "tasks": cmd_tasks, "presets": cmd_presets, "datasets": cmd_datasets, "diagnose": cmd_diagnose,
            "serve": SERVE.run}
