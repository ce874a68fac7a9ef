"""The registry and the configs: task lookup, --set overrides and their errors, the JSON round trip."""

from __future__ import annotations

import pytest

from seqapps.core import registry
from seqapps.core.config import keys
from seqapps.core.errors import ConfigError, SeqappsError


def test_registry_lists_sentiment_and_rejects_unknown():
    assert "sentiment" in registry.names()
    assert registry.get("sentiment").topology == "many-to-one"
    with pytest.raises(SeqappsError, match="unknown task 'nope'; expected one of: .*sentiment"):
        registry.get("nope")


def test_config_overrides_parse_types_and_reject_unknown_keys():
    cfg = registry.get("sentiment").default_config()
    cfg.override(["model.cell=gru", "model.bidirectional=false", "train.learning_rate=0.01",
                  "model.layers=2", "data.label_names=neg,pos"])
    assert (cfg.model.cell, cfg.model.bidirectional, cfg.train.learning_rate, cfg.model.layers) == ("gru", False, 0.01, 2)
    assert cfg.data.label_names == ["neg", "pos"]
    with pytest.raises(ConfigError, match=r"unknown config key 'model.celll'; valid keys: .*model\.cell"):
        cfg.override(["model.celll=gru"])
    with pytest.raises(ConfigError, match="model.units expects int, got 'many'"):
        cfg.override(["model.units=many"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        cfg.override(["model.units"])


def test_config_json_round_trip(tmp_path):
    task = registry.get("sentiment")
    cfg = task.default_config().override(["model.cell=rnn", "data.label_names=a,b"])
    cfg.save(tmp_path / "c.json")
    again = task.config_class.load(tmp_path / "c.json")
    assert again == cfg and "train.clipnorm" in keys(again)
