"""The DRB converter: fill rule (synthetic) and round trip against the shared source files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data import io, schema
from ddr_pipeline.ingest import drb

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT.parent / "shared" / "data" / "drb_nhm_2yr"
COMMITTED = REPO_ROOT / "data" / "01_raw" / "drb"


# --- fill rule on synthetic networks (no data needed) -------------------------------------------
def test_donor_nearest_downstream() -> None:
    # 0 -> 1 -> 2 -> 3 (outlet); only 2 and 3 have data
    down = np.array([1, 2, 3, -1])
    has = np.array([False, False, True, True])
    assert drb.donor_index(down, has, np.zeros(4)).tolist() == [2, 2, 2, 3]


def test_donor_upstream_fallback_with_tie_break() -> None:
    # 0 -> 2, 1 -> 2, 2 -> 3 (outlet); 3 and 2 have no data; 0 and 1 do; 1 drains more area
    down = np.array([2, 2, 3, -1])
    has = np.array([True, True, False, False])
    donor = drb.donor_index(down, has, tie_break=np.array([5.0, 9.0, 0.0, 0.0]))
    assert donor.tolist() == [0, 1, 1, 1]
    assert drb.filled_from_upstream(down, donor).tolist() == [False, False, True, True]


def test_donor_upstream_prefers_nearest() -> None:
    # 0 -> 1 -> 3, 2 -> 3 (outlet 3 without data); 1 and 0 have data, 2 has data
    # nearest upstream of 3 at distance 1: reaches 1 and 2 (tie -> larger tie_break = 2)
    down = np.array([1, 3, 3, -1])
    has = np.array([True, True, True, False])
    donor = drb.donor_index(down, has, tie_break=np.array([0.0, 1.0, 2.0, 0.0]))
    assert donor.tolist() == [0, 1, 2, 2]


def test_donor_none_anywhere_is_error() -> None:
    with pytest.raises(ValueError, match=r"\[0 1\]"):
        drb.donor_index(np.array([1, -1, -1]), np.array([False, False, True]), np.zeros(3))


def test_aggregate_area_weighted_and_filled() -> None:
    # HRUs 0,1 -> reach 1; HRU 2 -> none; reach 0 has no HRU and drains to reach 1
    weights = drb.hru_weights(np.array([1, 1, -1]), np.array([1.0, 3.0, 5.0]), n_reaches=2)
    donor = drb.donor_index(np.array([1, -1]), np.array([False, True]), np.zeros(2))
    out = drb.aggregate(np.array([[10.0, 20.0, 99.0], [0.0, 4.0, 1.0]]), weights, donor)
    np.testing.assert_allclose(out, [[17.5, 17.5], [3.0, 3.0]])


# --- the committed demo data (no shared data needed) ---------------------------------------------
@pytest.fixture(scope="module")
def committed() -> io.GeoDataset:
    if not (COMMITTED / schema.REACHES_FILE).exists():
        pytest.skip("committed DRB demo data not present")
    return io.load_geodataset(COMMITTED)


def test_committed_demo_passes_validators(committed: io.GeoDataset) -> None:
    ids = committed.reaches["id"].to_numpy()
    reaches = schema.validate_reaches(committed.reaches)
    assert len(reaches) == 456 and int((reaches["to_id"] == 0).sum()) == 6
    gauges = schema.validate_gauges(committed.gauges, ids)
    assert len(gauges) == 168
    schema.validate_attributes(committed.attributes, ids, list(drb.ATTRIBUTE_COLUMNS))
    _, n_filled = schema.validate_lateral_inflow(committed.lateral_inflow, ids, nan_fill=None)
    assert n_filled == 0
    schema.validate_observations(committed.observations, gauges["STAID"].tolist())
    schema.validate_forcings(committed.forcings, ids, schema.FORCING_VARS)
    schema.check_period(committed.forcings, "1979-01-01", "1980-12-31", "forcings.zarr")
    assert drb.well_observed(committed.observations, "1980-01-01", "1980-12-31") == 101
    assert committed.reference is not None
    assert committed.reaches["geometry_approximate"].all()
    assert committed.reaches.crs.to_epsg() == 4326


def test_committed_attributes_vary(committed: io.GeoDataset) -> None:
    values = committed.attributes[list(drb.ATTRIBUTE_COLUMNS)]
    assert np.isfinite(values.to_numpy()).all()
    assert (values.std() > 0).all()


# --- round trip against the shared source files --------------------------------------------------
@pytest.fixture(scope="module")
def source() -> Path:
    if not SOURCE.is_dir():
        pytest.skip(f"shared DRB source data not found at {SOURCE}")
    return SOURCE


@pytest.fixture(scope="module")
def converted(
    source: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[io.GeoDataset, drb.DRBSummary]:
    out = tmp_path_factory.mktemp("drb")
    summary = drb.convert_drb(source, out)
    return io.load_geodataset(out), summary


def nc(source: Path, name: str) -> xr.Dataset:
    return drb.open_source(source, name)


def test_summary_counts(converted: tuple[io.GeoDataset, drb.DRBSummary]) -> None:
    _, summary = converted
    assert summary.n_reaches == 456 and summary.n_outlets == 6
    assert summary.n_reaches_without_hru == 40 and summary.n_filled_upstream == 0
    assert summary.n_gauges == 168 and summary.n_gauges_dropped == 0
    assert summary.n_gauges_well_observed_1980 == 101 and summary.n_days == 731


def test_committed_matches_fresh_conversion(
    converted: tuple[io.GeoDataset, drb.DRBSummary], committed: io.GeoDataset
) -> None:
    geo, _ = converted
    xr.testing.assert_identical(geo.lateral_inflow, committed.lateral_inflow)
    xr.testing.assert_identical(geo.forcings, committed.forcings)
    xr.testing.assert_identical(geo.observations, committed.observations)
    pd.testing.assert_frame_equal(geo.attributes, committed.attributes)
    pd.testing.assert_frame_equal(geo.gauges, committed.gauges)


def test_reach_topology_and_channel(
    source: Path, converted: tuple[io.GeoDataset, drb.DRBSummary]
) -> None:
    geo, _ = converted
    seg = nc(source, "parameters_dis_seg.nc")
    r = geo.reaches.set_index("id")
    ids = seg["nhm_seg"].to_numpy()
    expected_to = np.where(seg["tosegment"] > 0, seg["tosegment_nhm"], 0)
    np.testing.assert_array_equal(r.loc[ids, "to_id"], expected_to)
    np.testing.assert_allclose(r.loc[ids, "length_m"], seg["seg_length"])
    np.testing.assert_allclose(r.loc[ids, "top_width"], seg["seg_width"])
    np.testing.assert_allclose(r.loc[ids, "geometry"].y, seg["seg_lat"])


def test_lateral_inflow_units_and_totals(
    source: Path, converted: tuple[io.GeoDataset, drb.DRBSummary]
) -> None:
    geo, _ = converted
    src = nc(source, "seg_lateral_inflow.nc")["seg_lateral_inflow"]
    qr = geo.lateral_inflow["Qr"]
    assert qr.dtype == np.float32 and qr.attrs["units"] == "m3 s-1"
    for seg_id, date in [(2048, "1979-01-05"), (1437, "1980-06-30"), (4231, "1980-12-31")]:
        expected = src.sel(nhm_seg=seg_id, time=date).item() * drb.CFS_TO_M3S
        assert qr.sel(divide_id=seg_id, time=date).item() == pytest.approx(expected, rel=1e-6)
    total = float(qr.astype(np.float64).sum())
    assert total == pytest.approx(float(src.sum()) * drb.CFS_TO_M3S, rel=1e-6)
    assert float(qr.min()) >= 0 and not qr.isnull().any()


def test_reference_outflow_units(
    source: Path, converted: tuple[io.GeoDataset, drb.DRBSummary]
) -> None:
    geo, _ = converted
    src = nc(source, "seg_outflow.nc")["seg_outflow"]
    out = geo.reference["outflow"]
    expected = src.sel(nhm_seg=1437, time="1980-03-01").item() * drb.CFS_TO_M3S
    assert out.sel(divide_id=1437, time="1980-03-01").item() == pytest.approx(expected, rel=1e-6)


def test_gauges_aligned_by_id(
    source: Path, converted: tuple[io.GeoDataset, drb.DRBSummary]
) -> None:
    geo, _ = converted
    seg = nc(source, "parameters_dis_seg.nc")
    obs = nc(source, "drb_2yr_gage_poi_obs.nc")
    gauges = geo.gauges.set_index("STAID")
    seg_of = dict(
        zip(
            seg["poi_gage_id"].to_numpy().astype(str),
            seg["poi_gage_segment"].to_numpy(),
            strict=True,
        )
    )
    ids = seg["nhm_seg"].to_numpy()
    for staid in ["01469500", "01411456", "0142400103", "01463500"]:
        assert gauges.loc[staid, "reach_ids"] == [int(ids[seg_of[staid] - 1])]
        src = obs.sel(poi_id=staid)
        assert gauges.loc[staid, "drain_sqkm"] == pytest.approx(
            float(src["drainage_area"]) * drb.SQMI_TO_KM2, rel=1e-6
        )
        assert gauges.loc[staid, "lat"] == pytest.approx(float(src["latitude"]))
        q = geo.observations["streamflow"].sel(gage_id=staid).to_numpy()
        np.testing.assert_allclose(q, src["discharge"].to_numpy() * drb.CFS_TO_M3S, rtol=1e-6)


def test_forcings_units_no_nan(
    source: Path, converted: tuple[io.GeoDataset, drb.DRBSummary]
) -> None:
    geo, _ = converted
    f = geo.forcings
    assert all(not f[v].isnull().any() for v in schema.FORCING_VARS)
    assert f["P"].attrs["units"] == "mm day-1" and f["Temp"].attrs["units"] == "degC"
    # a reach drained by exactly one HRU equals that HRU's forcing x factor
    ch = nc(source, "parameters_PRMSChannel.nc")
    hru_seg = ch["hru_segment"].to_numpy()
    counts = np.bincount(hru_seg, minlength=457)
    seg_index = int(np.flatnonzero(counts[1:] == 1)[0]) + 1
    hru_id = int(ch["nhm_id"].to_numpy()[hru_seg == seg_index][0])
    reach_id = int(ch["nhm_seg"].to_numpy()[seg_index - 1])
    date = "1979-07-15"
    prcp = nc(source, "prcp.nc")["prcp"].sel(nhm_id=hru_id, time=date).item()
    tmax = nc(source, "tmax.nc")["tmax"].sel(nhm_id=hru_id, time=date).item()
    tmin = nc(source, "tmin.nc")["tmin"].sel(nhm_id=hru_id, time=date).item()
    at = {"divide_id": reach_id, "time": date}
    assert f["P"].sel(at).item() == pytest.approx(prcp * 25.4, rel=1e-5, abs=1e-6)
    assert f["Temp"].sel(at).item() == pytest.approx(((tmax + tmin) / 2 - 32) * 5 / 9, abs=1e-4)


def test_attribute_fill_rule_and_climate_period(
    source: Path, converted: tuple[io.GeoDataset, drb.DRBSummary]
) -> None:
    geo, _ = converted
    ch = nc(source, "parameters_PRMSChannel.nc")
    ids = ch["nhm_seg"].to_numpy()
    has_hru = np.isin(np.arange(1, len(ids) + 1), ch["hru_segment"].to_numpy())
    attrs = geo.attributes.set_index("id")
    reaches = geo.reaches.set_index("id")
    hru_cols = [*drb.HRU_PROPERTIES, *drb.HRU_CLASS_FRACTIONS, *drb.CLIMATE_ATTRIBUTES]
    for reach_id in ids[~has_hru]:
        down = int(reaches.loc[reach_id, "to_id"])
        while down and not has_hru[np.flatnonzero(ids == down)[0]]:
            down = int(reaches.loc[down, "to_id"])
        assert down, f"reach {reach_id} has no downstream donor"
        np.testing.assert_allclose(attrs.loc[reach_id, hru_cols], attrs.loc[down, hru_cols])
        assert attrs.loc[reach_id, "hru_area_sqkm"] == 0.0
    mean_p_1979 = geo.forcings["P"].sel(time="1979").astype(np.float64).mean("time")
    np.testing.assert_allclose(attrs.loc[ids, "meanP"], mean_p_1979.sel(divide_id=ids), rtol=1e-6)
    mean_p_all = geo.forcings["P"].astype(np.float64).mean("time")
    assert not np.allclose(attrs.loc[ids, "meanP"], mean_p_all.sel(divide_id=ids))


def test_log10_uparea(source: Path, converted: tuple[io.GeoDataset, drb.DRBSummary]) -> None:
    geo, _ = converted
    seg = nc(source, "parameters_dis_seg.nc")
    attrs = geo.attributes.set_index("id")
    cum = dict(zip(seg["nhm_seg"].to_numpy(), seg["seg_cum_area"].to_numpy(), strict=True))
    assert attrs.loc[1437, "log10_uparea"] == pytest.approx(np.log10(cum[1437] * drb.ACRE_TO_KM2))
    assert attrs.loc[3558, "log10_uparea"] == pytest.approx(np.log10(drb.UPAREA_FLOOR_KM2))
