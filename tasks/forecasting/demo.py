"""Demo forecasting data: a synthetic hourly electricity load, generated in code.

Thirty days of hours. ``load`` (the target) follows a daily cycle, is lower at
weekends, and rises with the previous hour's ``temperature``; ``day_type`` is a text
column (weekday/weekend) so the categorical path is exercised, and a few values are
missing (``NA``) in ``load`` and ``temperature`` so the missing-value path is too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HOURS = 30 * 24


def frame(seed: int = 0, hours: int = HOURS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    time = pd.date_range("2024-03-01", periods=hours, freq="h")
    hour = time.hour.to_numpy()
    weekend = time.dayofweek.to_numpy() >= 5
    temperature = 12 + 6 * np.sin(2 * np.pi * (hour - 9) / 24) + np.cumsum(rng.normal(0, 0.3, hours)) * 0.2
    previous = np.concatenate([[temperature[0]], temperature[:-1]])
    load = (60 + 12 * np.sin(2 * np.pi * (hour - 6) / 24) - 8 * weekend + 0.9 * (previous - 12)
            + rng.normal(0, 1.0, hours))
    out = pd.DataFrame({"time": time.strftime("%Y-%m-%d %H:%M"), "load": np.round(load, 2),
                        "temperature": np.round(temperature, 2),
                        "day_type": np.where(weekend, "weekend", "weekday")})
    out = out.astype({"load": object, "temperature": object})
    for i in (100, 101, 350, 500):   # gaps in the target: never trained on or scored
        out.loc[i, "load"] = "NA"
    for i in (200, 430):
        out.loc[i, "temperature"] = "NA"
    return out
