"""The torch backend owns its device caches (keyed on network and device, dropped with the network)."""

from __future__ import annotations

import gc

import numpy as np
import torch

from ddr_pipeline.network import RiverNetwork
from ddr_pipeline.routing import _torch_backend as backend


def test_device_tensors_live_in_the_backend_and_go_with_the_network() -> None:
    net = RiverNetwork.from_ids(np.array([1, 2, 3]), np.array([3, 3, 0]))
    levels = backend._levels(net, torch.device("cpu"))
    assert backend._levels(net, torch.device("cpu")) is levels  # built once
    q = torch.tensor([1.0, 2.0, 0.5])
    assert backend._upstream_sum(q, net, torch.device("cpu")).tolist() == [0.0, 0.0, 3.0]
    assert {key[0] for key in backend._DEVICE_TENSORS[net]} == {"levels", "edges"}
    size = len(backend._DEVICE_TENSORS)
    del net, levels
    gc.collect()
    assert len(backend._DEVICE_TENSORS) == size - 1
