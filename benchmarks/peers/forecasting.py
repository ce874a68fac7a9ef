"""Classical forecasting peers for ``benchmarks/forecasting.py``: statsforecast's AutoETS,
AutoARIMA, AutoTheta and SeasonalNaive, one step ahead from the actual past.

Each peer is fitted once, on ``y[fit_start:fit_stop]`` (the caller picks the span; every
point of it lies before the first forecast time), and then forecasts ``y[t]`` for every
``t`` in ``times`` from ``y[fit_start:t]`` with the fitted parameters kept fixed (no refit):

* AutoETS, SeasonalNaive: statsforecast's ``forward`` (``forecast`` for the parameter-free
  seasonal naive) applies the fitted model to the longer series once, with ``fitted=True``;
  its in-sample values are the filter's one-step-ahead predictions, so the one at ``t`` is
  computed from ``y[<t]`` only.
* AutoARIMA, AutoTheta: their in-sample values over a longer series are not one-step
  forecasts from the past. ARIMA's are ``y - residuals`` with residuals standardized by the
  Kalman filter's innovation variance, so the value at ``t`` moves with ``y[t]`` (by 1.2%
  of the change, for a seasonal model fitted on 72 steps of a synthetic monthly series);
  Theta's ``forward`` re-runs the seasonality test and the classical (centred) seasonal
  decomposition over the whole series it is given. Both are therefore given the past only:
  ``forward(y[fit_start:t], h=1)`` at every forecast time ``t``, one call per time, with the
  fitted parameters kept (Theta's decomposition is that of the past at ``t``). Theta's
  autocorrelation test and filter cost grow with the square of the series length, so
  ``theta_context`` can bound it: fit on the last ``theta_context`` steps before
  ``fit_stop`` and forecast from the last ``theta_context`` steps before each ``t``.

tests/test_peers_forecasting.py checks every peer: changing ``y[t0:]`` leaves every forecast
up to ``t0`` unchanged.

Seasons: AutoETS and AutoARIMA get the series' season when it is at most
:data:`MAX_MODEL_SEASON` steps, else a non-seasonal model (season 1): statsforecast's ETS,
like R's ``ets``, holds at most 24 seasonal states (it falls back to non-seasonal
models for a longer season after trying the seasonal ones), and a seasonal ARIMA at a
365-step lag carries hundreds of states in its Kalman filter. AutoTheta and SeasonalNaive
always get the series' season. AutoARIMA's search uses conditional sums of squares with a
final maximum-likelihood fit (``approximation``) on series longer than 150 steps or with a
season above 12, R's ``auto.arima`` default: on the last 2,000 hourly pm2.5 values with
season 24, the exact-likelihood search had not finished after 55 s (nor on 720), the
approximate one took 6 s.

Missing values: the peers are univariate, and a gap is filled with the last observed
value before it (:func:`fill_past`), which is causal; the scores are taken only where the
target was observed (the caller's ``times``). Linear interpolation would use the next
observed value, which in the forecast part is the future.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

PEERS = ("AutoETS", "AutoARIMA", "AutoTheta", "SeasonalNaive")
MAX_MODEL_SEASON = 24


@dataclasses.dataclass
class PeerForecast:
    name: str
    forecast: np.ndarray      # one value per forecast time, in ``times`` order
    fit_seconds: float
    forecast_seconds: float
    model: str                # what the automatic search chose
    season: int               # the season the model was given
    method: str               # how the one-step forecasts were made


def fill_past(y) -> np.ndarray:
    """``y`` as float64 with each NaN replaced by the last observed value before it."""
    y = np.asarray(y, dtype="float64")
    missing = np.isnan(y)
    if not missing.any():
        return y.copy()
    if missing[0]:
        raise ValueError("the series starts with a missing value; there is no past value to fill it with")
    last = np.maximum.accumulate(np.where(missing, 0, np.arange(len(y))))
    return y[last]


def make_model(name: str, season: int, n_fit: int):
    """The statsforecast model ``name`` for a fit on ``n_fit`` steps of a series with ``season``."""
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta, SeasonalNaive

    model_season = season if season <= MAX_MODEL_SEASON else 1
    if name == "AutoETS":
        return AutoETS(season_length=model_season), model_season
    if name == "AutoARIMA":
        approximation = n_fit > 150 or model_season > 12
        return AutoARIMA(season_length=model_season, approximation=approximation), model_season
    if name == "AutoTheta":
        return AutoTheta(season_length=season), season
    if name == "SeasonalNaive":
        return SeasonalNaive(season_length=season), season
    raise ValueError(f"unknown peer {name!r}; expected one of {', '.join(PEERS)}")


def describe(name: str, model) -> str:
    fitted = getattr(model, "model_", None) or {}
    if name == "AutoETS":
        return str(fitted.get("method", "ETS"))
    if name == "AutoARIMA":
        from statsforecast.arima import arima_string

        return arima_string(fitted).strip()
    if name == "AutoTheta":
        return f"Theta ({fitted.get('modeltype', '?')})"
    return f"seasonal naive (m={model.season_length})"


PAST_ONLY = {"AutoARIMA", "AutoTheta"}   # forecast by ``forward`` on the past at each time (module notes)


def one_step_forecasts(name: str, y, fit_start: int, fit_stop: int, times, season: int,
                       theta_context: int | None = None) -> PeerForecast:
    """Fit peer ``name`` on ``y[fit_start:fit_stop]``, then forecast ``y[t]`` from ``y[fit_start:t]``
    for each ``t`` in ``times`` (all ``>= fit_stop``); see the module notes."""
    times = np.asarray(times, dtype=np.int64)
    if not len(times):
        raise ValueError("no forecast times")
    if times.min() < fit_stop or times.max() >= len(y) or not 0 <= fit_start < fit_stop:
        raise ValueError(f"forecast times must lie in [fit_stop={fit_stop}, {len(y)}) after a fit part "
                         f"[{fit_start}, {fit_stop})")
    y = fill_past(y)
    if name == "AutoTheta" and theta_context:
        fit_start = max(fit_start, fit_stop - int(theta_context))
    model, model_season = make_model(name, season, fit_stop - fit_start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        model.fit(y[fit_start:fit_stop])
        fit_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        end = int(times.max()) + 1
        if name in PAST_ONLY:
            context = int(theta_context) if name == "AutoTheta" and theta_context else None
            starts = [fit_start if context is None else max(fit_start, int(t) - context) for t in times]
            forecast = np.array([model.forward(y[a:t], h=1)["mean"][0] for a, t in zip(starts, times)])
            method = "forward on the past at each time" + (f" (last {context} steps)" if context else "")
        else:
            series = y[fit_start:end]
            if name == "SeasonalNaive":
                fitted = model.forecast(series, h=1, fitted=True)["fitted"]
            else:
                fitted = model.forward(series, h=1, fitted=True)["fitted"]
            forecast = np.asarray(fitted, dtype="float64")[times - fit_start]
            method = "forward once (one-step in-sample values)"
        forecast_seconds = time.perf_counter() - t0
    return PeerForecast(name, np.asarray(forecast, dtype="float64"), fit_seconds, forecast_seconds,
                        describe(name, model), model_season, method)

