"""Start-up mistakes are one line naming the fix: a missing extra, CUDA asked for where
there is none."""

from __future__ import annotations

import pytest

from swictation.application import container
from tests.conftest import has_cuda


def test_a_missing_extra_names_the_pip_command():
    with pytest.raises(RuntimeError) as caught:
        container._needs("swictation_no_such_module", "nemo", "--stt nemo")
    assert str(caught.value) == (
        "--stt nemo needs swictation_no_such_module: pip install 'swictation[nemo]'"
    )


def test_device_cuda_without_cuda_says_what_to_use_instead():
    if has_cuda():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="use --device auto or --device cpu"):
        container._device("cuda")
    assert container._device("auto") == "cpu"
