"""Device names: one rule (primitives/devices.py) and one parser (runtime.select_device) for the
config's `trainer.device`/`device`, the benches' and `sample`'s `--device`."""

from __future__ import annotations

import pytest
import torch

from reformer_cli.bench.common import resolve_device
from reformer_cli.errors import UserError
from reformer_cli.primitives.devices import is_device_name, not_a_device
from reformer_cli.runtime import select_device


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "mps", "cuda:0", "cuda:12"])
def test_device_names(name):
    assert is_device_name(name)


@pytest.mark.parametrize("name", ["cuda:abc", "cuda:-1", "cuda:", "gpu", "cuda:0:1", "", "CPU", " cpu"])
def test_not_device_names(name):
    assert not is_device_name(name)


def test_the_message_names_the_setting_as_written():
    assert not_a_device("trainer.device", "gpu") == "trainer.device='gpu' is not one of: auto, cpu, cuda, cuda:N, mps"
    assert not_a_device("--device", "gpu") == "--device 'gpu' is not one of: auto, cpu, cuda, cuda:N, mps"


@pytest.mark.parametrize("parse", [lambda n: select_device(n, "--device"), resolve_device])
def test_every_flag_parses_the_same_way(parse):
    assert parse("cpu") == torch.device("cpu")
    assert parse("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match=r"^--device 'cuda:abc' is not one of"):
        parse("cuda:abc")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line():
    with pytest.raises(UserError, match=r"^device='cuda:1' but no CUDA device is available \(use auto\)$"):
        select_device("cuda:1", "device")
