"""The space a forecaster works in, chosen per series on its validation part.

A :class:`TargetSpace` says how the model (:meth:`tasks.forecasting.task.Forecasting.build_model`)
treats the target inside itself:

* ``transform``: ``none``, ``log`` or ``boxcox`` (``lam`` fitted on the training part by maximum
  likelihood, scipy's ``boxcox_normmax``) — :class:`tasks.forecasting.layers.TargetTransform`;
* ``base``: the forecast the network's output is added to (``model.residual``): ``last``, the last
  value (the naive forecast; the network reads the standardized level), or ``seasonal``, the last
  value plus the change over the same steps one season ago (the network reads the window's
  seasonal-and-first differences, so a trend and a growing season do not take it out of the range
  it was trained on);
* the training part's mean and standard deviation of the transformed target and of its
  differences, which scale the network's inputs and outputs.

``model.transform=auto`` and ``model.base=auto`` (the defaults) make :func:`choose` train one model
per admissible pair — ``log`` needs a target above 0 in the training and validation parts,
``seasonal`` a window longer than the season and a horizon within it — with the run's own settings
and budget (early stopping on the validation loss, the best epoch kept), and keep the pair whose
model has the lowest validation MAE (in the target's units; a tie keeps the earlier, simpler pair).
The test part is never read. Where only one pair is admissible, nothing extra is trained. The
tries and their scores are kept in the run's ``series.json`` (``selection``).
"""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np

from seqapps.core.errors import ConfigError, DataError
from tasks.forecasting.layers import TRANSFORMS, transform

BASES = ("last", "seasonal")
SCAN_ROWS = 1 << 18        # target values read at a time
LAMBDA_SAMPLE = 100_000    # at most this many training values (evenly spaced) fit Box-Cox's lambda


@dataclasses.dataclass
class TargetSpace:
    transform: str = "none"
    lam: float = 0.0
    base: str = "last"
    mean: float = 0.0          # the transformed target's training mean and standard deviation
    std: float = 1.0
    diff_mean: float = 0.0     # those of its seasonal-and-first differences
    diff_std: float = 1.0

    @property
    def plain(self) -> bool:
        """No transform and the last value as base: the model as it was before spaces existed."""
        return self.transform == "none" and self.base == "last"

    def label(self) -> str:
        name = f"boxcox({self.lam:.3g})" if self.transform == "boxcox" else self.transform
        return f"transform {name}, base {self.base}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TargetSpace":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


def space_of(prep) -> TargetSpace:
    """The prep's target space (a run from before spaces: no transform, the last value as base)."""
    if prep.space:
        return TargetSpace.from_dict(prep.space)
    return TargetSpace(mean=prep.encoding.target_mean, std=prep.encoding.target_std)


# -- statistics of the training part, read a slice at a time -------------------------------------------
def _slices(y, start: int, stop: int, overlap: int = 0):
    for a in range(start, stop, SCAN_ROWS):
        yield np.asarray(y[max(0, a - overlap):min(a + SCAN_ROWS, stop)], "float64")


def smallest(y, stop: int) -> float:
    return min((float(part.min()) for part in _slices(y, 0, stop) if len(part)), default=math.nan)


def fit_lambda(y, stop: int) -> float:
    """Box-Cox's lambda by maximum likelihood on (at most :data:`LAMBDA_SAMPLE` of) ``y[:stop]``."""
    from scipy import stats

    step = max(1, stop // LAMBDA_SAMPLE)
    return float(stats.boxcox_normmax(np.asarray(y[:stop:step], "float64"), method="mle"))


def _moments(values_of, y, stop: int, overlap: int) -> tuple[float, float]:
    """Mean and standard deviation of ``values_of(slice)`` over ``y[:stop]`` (sums around a shift)."""
    count, total, squares, shift = 0, 0.0, 0.0, None
    for part in _slices(y, 0, stop, overlap):
        v = values_of(part)
        v = v[np.isfinite(v)]
        if not len(v):
            continue
        shift = float(v[0]) if shift is None else shift
        v = v - shift
        count, total, squares = count + len(v), total + float(v.sum()), squares + float((v * v).sum())
    if not count:
        return 0.0, 1.0
    mean = total / count
    std = math.sqrt(max(squares / count - mean * mean, 0.0))
    return mean + shift, (std if std > 1e-8 * max(1.0, abs(mean + shift)) else 1.0)


def fit_space(kind: str, base: str, y, train_stop: int, season: int) -> TargetSpace:
    """The space ``(kind, base)`` with its statistics fitted on ``y[:train_stop]``."""
    lam = fit_lambda(y, train_stop) if kind == "boxcox" else 0.0
    mean, std = _moments(lambda v: transform(v, kind, lam), y, train_stop, 0)
    diff_mean, diff_std = 0.0, 1.0
    if base == "seasonal":
        s = season

        def differences(v):
            z = transform(v, kind, lam)
            return z[s + 1:] - z[s:-1] - z[1:-s] + z[:-s - 1] if len(z) > s + 1 else z[:0]

        diff_mean, diff_std = _moments(differences, y, train_stop, s + 1)
    return TargetSpace(kind, lam, base, mean, std, diff_mean, diff_std)


# -- the candidates and the choice ------------------------------------------------------------------------
def candidates(cfg, y, val_stop: int, season: int, target: str) -> list[tuple[str, str]]:
    """The admissible ``(transform, base)`` pairs of ``cfg.model``'s settings (a setting that is not
    admissible for this series is one error line)."""
    m, d = cfg.model, cfg.data
    if m.transform != "auto" and m.transform not in TRANSFORMS:
        raise ConfigError(f"model.transform must be auto or one of {', '.join(TRANSFORMS)}, got {m.transform!r}")
    if m.base != "auto" and m.base not in BASES:
        raise ConfigError(f"model.base must be auto or one of {', '.join(BASES)}, got {m.base!r}")
    positive = smallest(y, val_stop) > 0
    if m.transform == "auto":
        transforms = ["none", "log"] if positive else ["none"]
    elif m.transform != "none" and not positive:
        raise DataError(f"model.transform={m.transform} needs a target above 0: {target!r} has a value <= 0 in "
                        "the training or validation part; set model.transform=none")
    else:
        transforms = [m.transform]
    seasonal = m.residual and 1 < season < d.window and d.horizon <= season
    if m.base == "auto":
        bases = ["last", "seasonal"] if seasonal else ["last"]
    elif m.base == "seasonal" and not seasonal:
        raise ConfigError(f"model.base=seasonal needs model.residual, a season above 1 and data.window above it "
                          f"(window {d.window}, season {season}), and data.horizon at most the season "
                          f"(horizon {d.horizon}); set model.base=last")
    else:
        bases = [m.base]
    return [(t, b) for t in transforms for b in bases]


def choose(task, cfg, prep, splits, verbose: bool = True):
    """``prep`` with its target space set: the one admissible pair, or the pair whose model trained
    on the training part has the lowest validation MAE (see the module notes)."""
    import keras

    series = splits.info["series"]
    y, train_stop, val_stop, season = series.y, splits.info["train_stop"], splits.info["val_stop"], prep.season
    pairs = candidates(cfg, y, val_stop, season, prep.encoding.target)
    spaces = [fit_space(kind, base, y, train_stop, season) for kind, base in pairs]
    prep.space, prep.selection = spaces[0].to_dict(), []
    if len(spaces) == 1:
        return prep
    if verbose:
        print(f"choosing the target space on the validation part: {len(spaces)} candidates, one model each",
              file=sys.stderr, flush=True)
    scores = []
    for space in spaces:
        prep.space = space.to_dict()
        mae = trial(task, cfg, prep, task.datasets(cfg, prep, splits))  # fresh datasets: the run's shuffles
        scores.append(mae if math.isfinite(mae) else math.inf)
        prep.selection.append({**space.to_dict(), "val_mae": mae})
        if verbose:
            print(f"  {space.label()}: validation MAE {mae:.6g}", file=sys.stderr, flush=True)
    best = int(np.argmin(scores))
    prep.space = spaces[best].to_dict()
    if verbose:
        print(f"chosen: {spaces[best].label()}", file=sys.stderr, flush=True)
    keras.utils.set_random_seed(cfg.train.seed)   # the run starts as if no candidate had been tried
    return prep


def trial(task, cfg, prep, datasets) -> float:
    """The validation MAE of a model of ``prep``'s space trained as the run trains it (the run's
    optimizer, epochs, patience and seed; the epoch with the best validation loss kept)."""
    import keras

    from seqapps.training.fit import make_optimizer

    train_ds, val_ds = datasets
    t = cfg.train
    steps = t.steps_per_epoch or None
    if steps:
        train_ds = train_ds.repeat()
    keras.utils.set_random_seed(t.seed)
    model = task.build_model(cfg, prep)
    per_epoch = steps or max(int(train_ds.cardinality()), 0) or None
    total = per_epoch * t.epochs if t.decay != "none" and per_epoch else None
    task.compile(model, cfg, make_optimizer(t, total), prep)
    stop = keras.callbacks.EarlyStopping(monitor=task.monitor, mode=task.monitor_mode,
                                         patience=t.patience or t.epochs, restore_best_weights=True)
    model.fit(train_ds, validation_data=val_ds, epochs=t.epochs, steps_per_epoch=steps,
              validation_steps=t.validation_steps or None, callbacks=[stop, keras.callbacks.TerminateOnNaN()],
              verbose=0, shuffle=False)
    scores = model.evaluate(val_ds, steps=t.validation_steps or None, verbose=0, return_dict=True)
    return float(scores["mae"])
