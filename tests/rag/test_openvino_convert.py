"""The Q8_0 file OpenVINO reads: the registry's model in another encoding, nothing else."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ConfigError
from rag.generate.openvino_convert import write_q8_0
from rag.models import gguf_path

MODEL = "smollm2-135m"


@pytest.fixture(scope="module")
def source() -> Path:
    return gguf_path(MODEL, Path(os.environ["RAG_TEST_CACHE"]))


def test_every_key_and_vector_is_kept_and_every_matrix_re_quantized(
    source: Path, tmp_path: Path
) -> None:
    import gguf

    out = tmp_path / "q8.gguf"
    write_q8_0(source, out, {})
    before, after = gguf.GGUFReader(str(source)), gguf.GGUFReader(str(out))
    keys = [key for key in before.fields if not key.startswith("GGUF.")]
    assert [key for key in after.fields if not key.startswith("GGUF.")] == keys
    for key in keys:
        if key != "general.file_type":
            assert after.fields[key].contents() == before.fields[key].contents(), key
    assert after.fields["general.file_type"].contents() == 7  # mostly Q8_0
    assert [t.name for t in after.tensors] == [t.name for t in before.tensors]
    q8 = gguf.GGMLQuantizationType.Q8_0
    for old, new in zip(before.tensors, after.tensors, strict=True):
        assert list(new.shape) == list(old.shape), old.name
        weights = gguf.quants.dequantize(old.data, old.tensor_type)
        if weights.ndim == 1:  # norms and biases: the same values, in float32
            assert new.tensor_type == gguf.GGMLQuantizationType.F32, old.name
            assert np.array_equal(np.asarray(new.data), weights), old.name
            continue
        assert new.tensor_type == q8, old.name
        # 8 bits per block of 32: within half a step of each block's scale (max / 127).
        error = np.abs(gguf.quants.dequantize(new.data, q8) - weights).max()
        assert error <= np.abs(weights).max() / 127, (old.name, error)


def test_an_adapter_for_weights_the_model_lacks_is_refused(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"blk\.99\.attn_q\.weight"):
        write_q8_0(source, tmp_path / "q8.gguf", {"blk.99.attn_q.weight": np.zeros((2, 2))})
