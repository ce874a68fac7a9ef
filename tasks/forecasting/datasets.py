"""The named datasets of the forecasting task: what each name means under the data directory
(``--data-dir`` or ``$SEQAPPS_DATA``); :mod:`seqapps.data.catalog` gathers them from every task."""

from seqapps.data.catalog import NamedDataset

DATASETS = [
    NamedDataset("airline_passengers", "forecasting", {"all": "timeseries/airline-passengers.csv"},
                 "monthly airline passengers 1949-1960", {"target": "Passengers"}),
    NamedDataset("daily_min_temperatures", "forecasting", {"all": "timeseries/daily-min-temperatures.csv"},
                 "daily minimum temperatures, Melbourne 1981-1990", {"target": "Temp"}),
    NamedDataset("monthly_sunspots", "forecasting", {"all": "timeseries/monthly-sunspots.csv"},
                 "monthly sunspot numbers 1749-1983", {"target": "Sunspots"}),
    NamedDataset("pollution", "forecasting", {"all": "timeseries/pollution.csv"},
                 "Beijing PM2.5, hourly, several variables", {"target": "pm2.5", "features": ["all"]}),
]
