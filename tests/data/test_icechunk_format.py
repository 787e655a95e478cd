"""The built-in reader of local Icechunk format-2 repositories, on the Juniata bundle's store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ddr_pipeline.ingest.icechunk_format import (
    IcechunkFormatError,
    branch_snapshot,
    manifest_refs,
    object_id,
    open_icechunk_v2,
    snapshot_nodes,
    zarr_store,
)

OBS = Path(__file__).parent / "ddr_juniata" / "examples" / "juniata" / "data" / "juniata_obs.ic"


def test_object_ids_are_crockford_base32_file_names():
    assert object_id(bytes(12)) == "0" * 20
    assert object_id(b"\xff" * 12) == "Z" * 19 + "G"  # 96 bits + 4 zero pad bits
    snapshot = branch_snapshot(OBS, "main")
    assert snapshot == "BPY4SW34FJGXWC3T806G" and (OBS / "snapshots" / snapshot).is_file()


def test_snapshot_nodes_and_chunk_references():
    nodes = {n.path: n for n in snapshot_nodes(OBS, branch_snapshot(OBS, "main"))}
    assert sorted(nodes) == ["/", "/gage_id", "/streamflow", "/time"]
    assert nodes["/"].manifests == () and b'"node_type": "group"' in nodes["/"].metadata
    flow = nodes["/streamflow"]
    refs = {}
    for manifest in flow.manifests:
        refs.update(manifest_refs(OBS, manifest, flow.node_id))
    assert sorted(refs)[:2] == [(0, 0), (0, 1)] and len(refs) == 13
    assert all((OBS / "chunks" / r.chunk_id).is_file() for r in refs.values())
    gage = nodes["/gage_id"]
    inline = manifest_refs(OBS, gage.manifests[0], gage.node_id)[(0,)]
    assert inline.chunk_id is None and inline.inline  # a small chunk kept in the manifest


def test_dataset_is_lazy_and_complete():
    ds = open_icechunk_v2(OBS)
    assert ds["gage_id"].to_numpy().tolist() == ["01567000"]
    flow = ds["streamflow"].to_numpy()
    assert flow.shape == (1, 11323) and np.isfinite(flow).all() and (flow > 0).all()


def test_bad_repositories_are_named(tmp_path):
    repo = shutil.copytree(OBS, tmp_path / "obs.ic")
    with pytest.raises(IcechunkFormatError, match=r"no branch 'dev'; branches: \['main'\]"):
        branch_snapshot(repo, "dev")
    (repo / "snapshots" / "BPY4SW34FJGXWC3T806G").unlink()
    with pytest.raises(IcechunkFormatError, match=r"BPY4SW34FJGXWC3T806G: missing from"):
        open_icechunk_v2(repo)
    (repo / "repo").write_bytes(b"ICE" + bytes(60))
    with pytest.raises(IcechunkFormatError, match=r"repo: not an Icechunk metadata file"):
        open_icechunk_v2(repo)


def test_store_is_read_only():
    store = zarr_store(OBS)
    with pytest.raises(IcechunkFormatError, match="read-only"):
        store._store_dict["streamflow/c/0/0"] = None
