"""DDR bundle reader (``ddr-convert-ddr``) on a committed copy of DDR's Juniata bundle.

The bundle copy (tests/data/ddr_juniata, Apache-2.0) keeps its Icechunk format-2 observation
store (read by the built-in reader, or icechunk >= 2) but lacks its 8.7 MB Q' store (the same
format): a DDR-layout ``Qr(divide_id, time)`` zarr store is built from the committed conversion
``data/01_raw/juniata/lateral_inflow.zarr`` (made from the original store).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
import zarr

from ddr_pipeline.data import io
from ddr_pipeline.evaluation import metrics
from ddr_pipeline.evaluation.baselines import summed_lateral_inflow
from ddr_pipeline.ingest import convert_ddr as cli
from ddr_pipeline.ingest.ddr import (
    DdrError,
    DdrSources,
    compare_statistics,
    convert_ddr,
    read_statistics,
    write_ddr_stores,
)
from ddr_pipeline.ingest.ddr_config import DdrConfigError, convert_ddr_config, load_ddr_config
from ddr_pipeline.ingest.stores import StoreError, open_store, read_lateral_inflow
from ddr_pipeline.network import RiverNetwork

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = Path(__file__).parent / "ddr_juniata"
DATA = BUNDLE / "examples" / "juniata" / "data"
CONVERTED = ROOT / "data" / "01_raw" / "juniata"
TEST_PERIOD = ("1995-10-01", "2010-09-30")
HAS_ICECHUNK2 = (
    importlib.util.find_spec("icechunk") is not None
    and int(__import__("icechunk").__version__.split(".")[0]) >= 2
)


def _ddr_store(ds: xr.Dataset, path: Path) -> Path:
    """Write ``ds`` as DDR publishes it: plain zarr v3, integer/str ids, no checksums."""
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The committed bundle plus a DDR-layout Q' zarr store (the bundle's own is left out)."""
    root = tmp_path_factory.mktemp("ddr")
    data = root / "examples" / "juniata" / "data"
    shutil.copytree(BUNDLE / "examples", root / "examples")
    _ddr_store(io.read_zarr(CONVERTED / "lateral_inflow.zarr"), data / "juniata_qprime.zarr")
    config = load_ddr_config(root / "examples" / "juniata" / "ddrs.yaml")
    sources = DdrSources.from_config(config, root)
    return root, config, sources


def _with_zarr_stores(sources: DdrSources) -> DdrSources:
    data = Path(sources.conus_adjacency).parent
    return DdrSources(
        **{
            **sources.__dict__,
            "streamflow": str(data / "juniata_qprime.zarr"),
        }
    )


def test_sources_from_ddr_config(bundle):
    root, _, sources = bundle
    data = root / "examples" / "juniata" / "data"
    assert sources.conus_adjacency == str(data / "juniata_conus_adjacency.zarr")
    assert sources.streamflow == str(data / "juniata_qprime.ic")
    # DDR's statistics folder beside the attributes resolves to the JSON naming the attribute file
    assert sources.statistics == str(
        data / "statistics" / "merit_attribute_statistics_juniata_attributes.nc.json"
    )


def test_convert_matches_committed_juniata(bundle, tmp_path):
    _, _, sources = bundle
    converted = convert_ddr(sources)
    reaches, gauges = converted.tables.reaches, converted.tables.gauges
    assert len(reaches) == 213 and int((reaches["to_id"] == 0).sum()) == 1
    network = RiverNetwork.from_ids(reaches["id"].to_numpy(), reaches["to_id"].to_numpy())
    outlet = int(reaches.loc[reaches["to_id"] == 0, "id"].iloc[0])
    assert gauges["STAID"].tolist() == ["01567000"] and gauges["reach_ids"][0] == [outlet]
    assert outlet == 73005278 and network.upstream_closure(network.index_of([outlet])).size == 213
    committed = io.read_table(CONVERTED / "reaches.parquet")
    np.testing.assert_array_equal(reaches["id"], committed["id"])
    np.testing.assert_array_equal(reaches["to_id"], committed["to_id"])
    np.testing.assert_allclose(reaches["length_m"], committed["length_m"])
    # the adjacency's float32 channel arrays, aligned with `order`
    order = zarr.open_group(str(sources.conus_adjacency), mode="r")
    np.testing.assert_array_equal(reaches["slope"], np.asarray(order["slope"][...], np.float64))
    attrs = converted.tables.attributes
    pd.testing.assert_frame_equal(attrs, io.read_table(CONVERTED / "attributes.parquet"))
    written = write_ddr_stores(
        _with_zarr_stores(sources), tmp_path, reaches["id"].to_numpy(), ["01567000"]
    )
    assert [p.name for p in written] == ["lateral_inflow.zarr", "observations.zarr"]
    qr = io.read_zarr(tmp_path / "lateral_inflow.zarr")
    np.testing.assert_array_equal(
        qr["Qr"].to_numpy(), io.read_zarr(CONVERTED / "lateral_inflow.zarr")["Qr"].to_numpy()
    )
    for name in ("lateral_inflow.zarr", "observations.zarr"):  # obs: the format-2 original
        xr.testing.assert_equal(io.read_zarr(tmp_path / name), io.read_zarr(CONVERTED / name))


def test_ddr_statistics_kept_and_agree(bundle):
    _, _, sources = bundle
    stats = read_statistics(sources.statistics)
    attrs = io.read_table(CONVERTED / "attributes.parquet")
    table = compare_statistics(stats, attrs)
    assert len(table) == 10 and (table["max_rel_diff"] < 1e-9).all()
    kept = CONVERTED / "ddr_attribute_statistics.json"
    assert read_statistics(kept) == stats


def test_summed_lateral_inflow_baseline_reproduces_ddr():
    """DDR/ddrs publish 0.695 NSE / 0.819 KGE for summed Q' at 01567000 on WY1996-2010."""
    reaches = io.read_table(CONVERTED / "reaches.parquet")
    gauges = io.read_table(CONVERTED / "gauges.parquet")
    network = RiverNetwork.from_ids(reaches["id"].to_numpy(), reaches["to_id"].to_numpy())
    qr = io.read_zarr(CONVERTED / "lateral_inflow.zarr")["Qr"].sel(time=slice(*TEST_PERIOD))
    obs = io.read_zarr(CONVERTED / "observations.zarr")["streamflow"].sel(time=slice(*TEST_PERIOD))
    index = [network.index_of(np.asarray(r)) for r in gauges["reach_ids"]]
    order = network.index_of(qr["divide_id"].to_numpy())
    values = np.empty((qr.sizes["time"], network.n_reaches))
    values[:, order] = qr.transpose("time", "divide_id").to_numpy()
    summed = summed_lateral_inflow(values, network, index).T
    observed = obs.sel(gage_id=gauges["STAID"].tolist()).to_numpy()
    assert summed.shape == observed.shape == (1, 5479)
    assert round(float(metrics.nse(summed, observed)[0]), 3) == 0.695
    assert round(float(metrics.kge(summed, observed)[0]), 3) == 0.819


def test_gauge_csv_and_subgroup_must_agree(bundle, tmp_path):
    _, _, sources = bundle
    table = pd.read_csv(sources.gages, dtype={"STAID": str})
    table.loc[0, "COMID"] = 73005279  # a reach upstream of the gauge's own reach
    bad = tmp_path / "gages.csv"
    table.to_csv(bad, index=False)
    with pytest.raises(
        DdrError, match=r"gauge 01567000: the gauge CSV puts it on COMID \[73005279\]"
    ):
        convert_ddr(DdrSources(**{**sources.__dict__, "gages": str(bad)}))


def test_subgroup_upstream_set_must_match_network(bundle, tmp_path):
    _, _, sources = bundle
    store = tmp_path / "gages.zarr"
    shutil.copytree(sources.gages_adjacency, store)
    group = zarr.open_group(str(store / "01567000"), mode="r+")
    rows, cols = (np.asarray(group[name][...]) for name in ("indices_0", "indices_1"))
    # drop the last edge: its upstream reach is no longer in the gauge's set
    del group["indices_0"], group["indices_1"]
    group.create_array("indices_0", data=rows[:-1])
    group.create_array("indices_1", data=cols[:-1])
    with pytest.raises(DdrError, match=r"gauge 01567000: adjacency subgroup holds 212 reaches"):
        convert_ddr(DdrSources(**{**sources.__dict__, "gages_adjacency": str(store)}))


def test_adjacency_without_channel_arrays_is_named(bundle, tmp_path):
    _, _, sources = bundle
    store = tmp_path / "conus.zarr"
    shutil.copytree(sources.conus_adjacency, store)
    shutil.rmtree(store / "slope")
    with pytest.raises(DdrError, match=r"no slope array aligned with `order`"):
        convert_ddr(DdrSources(**{**sources.__dict__, "conus_adjacency": str(store)}))


def test_depth_lateral_inflow_needs_and_uses_unit_areas(tmp_path):
    depth = xr.Dataset(
        {"Qr": (("divide_id", "time"), np.array([[8.64, 0.0], [86.4, 1.0]]))},
        coords={"divide_id": [7, 9], "time": pd.date_range("2000-01-01", periods=2)},
    )
    depth["Qr"].attrs["units"] = "mm/day"
    with pytest.raises(StoreError, match=r"'Qr' is a depth \('mm/day'\).*unit-catchment area"):
        read_lateral_inflow(depth, [7, 9])
    with pytest.raises(StoreError, match=r"no positive unit-catchment area.*reach id \[9\]"):
        read_lateral_inflow(depth, [7, 9], area_km2=pd.Series({7: 10.0}))
    out = read_lateral_inflow(depth, [9, 7], area_km2=pd.Series({7: 10.0, 9: 2.0}))
    # 86.4 mm/day over 2 km2 = 2 m3/s; 8.64 mm/day over 10 km2 = 1 m3/s
    np.testing.assert_allclose(out["Qr"].to_numpy(), [[2.0, 2.0 / 86.4], [1.0, 0.0]], rtol=1e-6)


def test_config_mapping(bundle):
    _, config, _ = bundle
    converted = convert_ddr_config(config, "juniata")
    dp, training = converted.sections["data_processing"], converted.sections["training"]
    assert dp["periods"] == {
        "train": ["1981-10-01", "1995-09-30"],
        "test": ["1995-10-01", "2010-09-30"],
    }
    assert dp["forcings"] == [] and len(dp["attributes"]) == 10
    assert training["experiment"]["grad_clip_norm"] == 1.0  # grad_clip_max_norm
    assert training["experiment"]["learning_rate"] == {1: 0.001, 15: 0.0005}
    assert (training["experiment"]["epochs"], training["experiment"]["rho"]) == (30, 90)
    assert training["kan"]["grid"] == 50 and training["kan"]["k"] == 2  # kan_head -> kan
    assert training["kan"]["learnable_parameters"] == ["n", "q_spatial", "p_spatial"]
    assert training["routing"]["geometry"] == "ddr"  # derived from p_spatial, as DDR does
    assert "top_width" not in training["params"]["parameter_ranges"]
    assert training["cuda_lstm"] is None
    assert training["params"]["attribute_minimums"]["slope"] == 1.0e-3
    assert converted.sections["evaluation"]["chunk_days"] == 15
    assert "params.tau" in converted.unmapped and "np_seed" in converted.unmapped
    assert training["routing"]["output_shift_hours"] == 8  # ddrs tau 9: the same hours
    assert "data_sources" not in converted.unmapped


def test_converted_parameters_validate(bundle, tmp_path):
    from ddr_pipeline.config.training import TrainingConfig

    _, config, _ = bundle
    converted = convert_ddr_config(config, "juniata")
    paths = converted.write(tmp_path, "ddrs.yaml")
    assert sorted(p.name for p in paths)[0] == "parameters_data_processing.yml"
    base = yaml.safe_load((ROOT / "conf" / "base" / "parameters_training.yml").read_text())
    training = _deep_merge(base["training"], converted.sections["training"])
    training["run_name"] = "ddr-juniata-training"
    training["monitoring"]["models_dir"] = str(tmp_path)
    parsed = TrainingConfig.model_validate(training)
    assert parsed.learned_parameters == ["n", "q_spatial", "p_spatial"]
    assert parsed.routing.geometry == "ddr"


def test_config_learning_geometry_keeps_it_learned(bundle):
    """A DDR config whose KAN learns top width / side slope (DDR v0.5.1) routes them."""
    _, config, _ = bundle
    older = {**config, "kan_head": {**config["kan_head"]}}
    older["kan_head"]["learnable_parameters"] = ["n", "q_spatial", "top_width", "side_slope"]
    training = convert_ddr_config(older, "juniata").sections["training"]
    assert training["routing"]["geometry"] == "learned"


def _deep_merge(base: dict, override: dict) -> dict:
    """Kedro's soft merge of a parameter file over conf/base (nested mappings merged)."""
    out = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _deep_merge(out[key], value) if both else value
    return out


def test_bad_ddr_config_names_the_key():
    with pytest.raises(DdrConfigError, match=r"experiment.start_time='1981/13' is not"):
        convert_ddr_config(
            {
                "kan": {"input_var_names": ["a"]},
                "experiment": {"start_time": "1981/13", "end_time": "1995/09/30"},
            },
            "x",
        )
    with pytest.raises(DdrConfigError, match=r"no kan \(DDR\) or kan_head"):
        convert_ddr_config({"experiment": {}}, "x")


def test_command_converts_bundle_and_writes_parameters(bundle, tmp_path, capsys):
    root, _, sources = bundle
    data = Path(sources.conus_adjacency).parent
    cli.main(
        [
            "--ddr-config",
            str(root / "examples" / "juniata" / "ddrs.yaml"),
            "--root",
            str(root),
            "--name",
            "juniata",
            "--out",
            str(tmp_path / "raw"),
            "--conf-out",
            str(tmp_path / "conf"),
            "--streamflow",
            str(data / "juniata_qprime.zarr"),
        ]
    )
    out = capsys.readouterr().out
    assert "juniata: 213 reaches, 1 gauges" in out
    assert "not carried over as is: params.tau" in out
    for name in ("reaches.parquet", "lateral_inflow.zarr", "ddr_attribute_statistics.json"):
        assert (tmp_path / "raw" / name).exists()
    written = yaml.safe_load((tmp_path / "conf" / "parameters_training.yml").read_text())
    assert written["training"]["experiment"]["grad_clip_norm"] == 1.0


def test_icechunk_format2_store_read_without_icechunk2(caplog):
    """The bundle's Icechunk format-2 store, read by the built-in reader where icechunk < 2."""
    obs = open_store(DATA / "juniata_obs.ic")
    committed = io.read_zarr(CONVERTED / "observations.zarr")  # converted with icechunk 2.3.0
    assert obs["streamflow"].dims == ("gage_id", "time") and obs.sizes["time"] == 11323
    np.testing.assert_array_equal(
        obs["streamflow"].to_numpy().astype(np.float32), committed["streamflow"].to_numpy()
    )
    assert str(obs["time"].to_numpy()[0])[:10] == "1980-01-01"


@pytest.mark.skipif(
    not HAS_ICECHUNK2, reason="needs icechunk >= 2 (Python >= 3.12): pip install 'icechunk>=2'"
)
def test_builtin_reader_equals_icechunk2():
    from ddr_pipeline.ingest.icechunk_format import open_icechunk_v2

    ours = open_icechunk_v2(DATA / "juniata_obs.ic")
    theirs = open_store(DATA / "juniata_obs.ic")
    xr.testing.assert_identical(ours.load(), theirs.load())


def test_command_reports_a_wrong_layout_in_one_line(bundle, tmp_path):
    _, _, sources = bundle
    not_coo = tmp_path / "plain.zarr"
    xr.Dataset({"order": ("x", [1, 2])}).to_zarr(not_coo, zarr_format=3, consolidated=False)
    with pytest.raises(
        SystemExit, match=r"ddr-convert-ddr: .*plain.zarr: missing array\(s\) indices_0"
    ):
        cli.run(
            ["--conus-adjacency", str(not_coo), "--gages", sources.gages, "--out", str(tmp_path)]
        )
    with pytest.raises(SystemExit, match=r"ddr-convert-ddr: .*unrecognised store"):
        cli.run(
            [
                "--conus-adjacency",
                sources.conus_adjacency,
                "--gages",
                sources.gages,
                "--streamflow",
                str(tmp_path),
                "--out",
                str(tmp_path / "out"),
            ]
        )
