"""captioning has no ONNX export yet: ``export --format onnx`` refuses it with one line and writes nothing."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from seqapps.core.errors import ExportError


def test_onnx_export_of_captioning_is_refused_with_one_line(tmp_path):
    from seqapps.inference import formats

    bundle = SimpleNamespace(task=SimpleNamespace(name="captioning"))
    with pytest.raises(ExportError, match="--format onnx is not available for captioning") as e:
        formats.write(bundle, tmp_path / "out", "onnx", "int8")
    assert "\n" not in str(e.value) and "SavedModel" in str(e.value) and "translation" in str(e.value)
    assert not (tmp_path / "out").exists()
