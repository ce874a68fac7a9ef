"""Scoring helpers the tasks declare with: translation scores by source length, the forecast report."""

from __future__ import annotations

import numpy as np
import pytest

from seqapps.analysis import metrics


def test_translation_scores_overall_and_by_source_length():
    sources = ["a b", "a b c d e f g", "one two three four five six seven eight nine ten eleven"]
    refs = ["the cat sat on the mat", "a dog ran in the park today", "it is cold here in winter time"]
    assert metrics.length_buckets(sources) == {"1-5": [0], "6-10": [1], "11-15": [2]}
    perfect = metrics.score_translations(sources, refs, refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["examples"] == 3
    assert list(perfect["by_source_length"]) == ["1-5", "6-10", "11-15"]
    wrong = metrics.score_translations(sources, ["x y z"] * 3, refs)
    assert wrong["bleu"] < 5 and wrong["by_source_length"]["1-5"]["examples"] == 1
    assert "BLEU 100.00" in metrics.format_translation(perfect)


def test_forecast_report_scores_every_method_in_order():
    y = np.array([[1.0], [2.0], [3.0]])
    report = metrics.forecast_report(y, {"model": y, "naive": y + 1}, 2.0, split="test", windows=3, horizon=1,
                                     season=1, target="t")
    assert list(report)[-2:] == ["model", "naive"]
    assert report["model"]["mae"] == 0 and report["naive"] == {"mae": 1.0, "rmse": 1.0, "mase": 0.5}
    assert metrics.format_forecast(report).splitlines()[3].split() == ["naive", "1.0000", "1.0000", "0.5000"]
