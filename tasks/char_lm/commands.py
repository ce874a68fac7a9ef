"""char_lm's subcommands: ``python -m seqapps generate`` and ``python -m seqapps inspect``."""

from __future__ import annotations

from seqapps.core.commands import Command, at_least_one, positive_int, table


# -- generate: text from a model whose Predictor has generate() ----------------------------------
def _generate_arguments(p):
    p.add_argument("path")
    p.add_argument("--prime", default="", help="text to continue (default: empty, as after a line break)")
    p.add_argument("--length", type=positive_int, default=200, help="characters to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="0 picks the most likely character")
    p.add_argument("--top-k", type=positive_int, default=0, help="sample among the k most likely (0: off)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (1: off)")
    p.add_argument("--seed", type=int, help="the same seed gives the same text")


def _generate(args):
    from seqapps.core.errors import SeqappsError
    from seqapps.inference.loading import load

    predictor = load(args.path)
    if not hasattr(predictor, "generate"):
        raise SeqappsError(f"{args.path}: a {predictor.task.name} model does not generate text; "
                           "expected a char_lm run or export")
    print(args.prime + predictor.generate(args.prime, length=args.length, temperature=args.temperature,
                                          top_k=args.top_k, top_p=args.top_p, seed=args.seed))


GENERATE = Command("generate", "generate text with a char_lm export (or run directory)", _generate_arguments,
                   _generate)


# -- inspect: colour a text by a recurrent unit (seqapps.analysis.states) ----------------------------------
def _inspect_arguments(p):
    p.add_argument("path", help="char_lm run directory or export")
    p.add_argument("--text", required=True, help="UTF-8 text file to read through the model")
    p.add_argument("--find", choices=["quotes", "line-position", "indent"],
                   help="rank the units by how well they track this, and show the best")
    p.add_argument("--unit", type=positive_int, help="unit to colour by (default: the best found, else 0)")
    p.add_argument("--layer", type=at_least_one, default=1)
    p.add_argument("--state", choices=["hidden", "cell", "input", "forget", "output", "candidate", "update", "reset"],
                   default="hidden", help="cell: the LSTM cell state; input/forget/output/candidate: an LSTM gate; "
                                          "update/reset: a GRU gate")
    p.add_argument("--top", type=at_least_one, default=10, help="units to list with --find")
    p.add_argument("--max-chars", type=positive_int, default=20000, help="read at most this many characters")
    p.add_argument("--out", default="inspect", help="folder for inspect.html, inspect.png, states.npz")


def _inspect(args):
    from seqapps.analysis.states import inspect

    result = inspect(args.path, args.text, args.out, unit=args.unit, layer=args.layer, state=args.state,
                     find=args.find, top=args.top, max_chars=args.max_chars)
    if result["ranking"]:
        print(f"units tracking {args.find} (Pearson r over {result['chars']} characters):")
        table(["state", "layer", "unit", "r"],
              [(u["state"], u["layer"], u["unit"], f"{u['r']:+.3f}") for u in result["ranking"]])
    shown = result["shown"]
    print(f"coloured by layer {shown['layer']} {shown['state']} unit {shown['unit']}")
    for path in result["written"].values():
        print(f"wrote {path}")


INSPECT = Command("inspect", "colour a text by a recurrent unit's activation (char_lm)", _inspect_arguments,
                  _inspect)
