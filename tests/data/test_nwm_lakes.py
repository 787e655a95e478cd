"""NWM LAKEPARM + RouteLink -> lakes on a collapsed network: outlets, rewiring, lateral sums,
the errors (no outlet, several outlets, lakes missing either side) and their explicit options."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from ddr_pipeline.data import schema
from ddr_pipeline.ingest import nwm_lakes
from ddr_pipeline.ingest.nwm_lakes import NwmLakeError


def routelink(**overrides: object) -> pd.DataFrame:
    """1 -> 2 -> [3 -> 5 -> 6] -> 7 -> 0 with 4 -> 5; 10 -> [8] -> 9 -> 0; lakes 100 and 200."""
    data: dict[str, object] = {
        "link": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        "to": [2, 3, 5, 5, 6, 7, 0, 9, 0, 8],
        "NHDWaterbodyComID": [-9999, -9999, 100, -9999, 100, 100, -9999, 200, -9999, -9999],
        "Length": np.arange(1.0, 11.0) * 100.0,
    }
    data.update(overrides)
    return pd.DataFrame(data)


def lakeparm(ids: list[int] | None = None) -> pd.DataFrame:
    ids = ids or [100, 200]
    n = len(ids)
    return pd.DataFrame(
        {
            "lake_id": ids,
            "LkArea": np.linspace(1.0, 2.0, n),
            "LkMxE": [110.0] * n,
            "WeirE": [109.0] * n,
            "WeirC": [0.4] * n,
            "WeirL": [10.0] * n,
            "Dam_Length": [10.0] * n,
            "OrificeE": [100.0] * n,
            "OrificeC": [0.1] * n,
            "OrificeA": [1.0] * n,
            "ifd": [0.9] * n,
        }
    )


def test_waterbodies_collapse_onto_their_outlets() -> None:
    out = nwm_lakes.collapse_lakes(routelink(), lakeparm())
    links = out.links.set_index("link")
    assert links.index.tolist() == [1, 2, 4, 6, 7, 8, 9, 10]
    assert links["to"].to_dict() == {1: 2, 2: 6, 4: 6, 6: 7, 7: 0, 8: 9, 9: 0, 10: 8}
    assert links.loc[6, "Length"] == 600.0  # other RouteLink columns carried along
    assert sorted(out.removed.tolist()) == [3, 5]
    assert out.lakes.set_index("lake_id")["reach_id"].to_dict() == {100: 6, 200: 8}
    assert out.lakes["initial_elevation"].tolist() == pytest.approx([109.0, 109.0])
    validated = schema.validate_lakes(out.lakes, links.index.to_numpy())
    assert list(validated.columns[:2]) == ["lake_id", "reach_id"]


def test_lake_chain_stays_chained() -> None:
    # lake 300 = [11, 12]: its outlet 12 drains into link 3, inside lake 100
    extra = pd.DataFrame(
        {"link": [11, 12], "to": [12, 3], "NHDWaterbodyComID": [300, 300], "Length": [1.0, 1.0]}
    )
    out = nwm_lakes.collapse_lakes(pd.concat([routelink(), extra]), lakeparm([100, 200, 300]))
    assert out.links.set_index("link").loc[12, "to"] == 6  # into lake 100's outlet
    assert out.lakes.set_index("lake_id").loc[300, "reach_id"] == 12


def test_lateral_inflow_of_a_lake_lands_on_its_outlet() -> None:
    out = nwm_lakes.collapse_lakes(routelink(), lakeparm())
    time = pd.date_range("2021-08-23 13:00", periods=3, freq="h")
    values = np.arange(30.0).reshape(10, 3)
    qlat = xr.DataArray(
        values,
        dims=("feature_id", "time"),
        coords={"feature_id": routelink()["link"].to_numpy()[::-1], "time": time},
        name="q_lateral",
        attrs={"units": "m3 s-1"},
    )
    summed = nwm_lakes.collapse_lateral(qlat, out.lateral_target)
    assert sorted(summed["feature_id"].to_numpy().tolist()) == [1, 2, 4, 6, 7, 8, 9, 10]
    by_link = qlat.sel(feature_id=[3, 5, 6]).sum("feature_id")
    np.testing.assert_allclose(summed.sel(feature_id=6), by_link)
    np.testing.assert_allclose(summed.sum("feature_id"), qlat.sum("feature_id"))  # mass kept
    assert summed.attrs["units"] == "m3 s-1" and summed.name == "q_lateral"
    with pytest.raises(NwmLakeError, match=r"no values for link \[5\]"):
        nwm_lakes.collapse_lateral(qlat.drop_sel(feature_id=5), out.lateral_target)


def test_waterbody_without_an_outlet_is_named() -> None:
    rl = routelink(to=[2, 3, 5, 5, 3, 7, 0, 9, 0, 8])  # 3 -> 5 -> 3, and 6 is orphaned
    rl.loc[rl["link"] == 6, "NHDWaterbodyComID"] = -9999
    with pytest.raises(
        NwmLakeError, match=r"waterbody \(NHDWaterbodyComID\) \[100\] has no outlet"
    ):
        nwm_lakes.collapse_lakes(rl, lakeparm())


def test_waterbody_with_several_outlets_is_named() -> None:
    rl = routelink(to=[2, 3, 7, 5, 6, 7, 0, 9, 0, 8])  # 3 and 6 both leave lake 100
    with pytest.raises(NwmLakeError, match=r"several outlet links .*100: \[3, 6\]"):
        nwm_lakes.collapse_lakes(rl, lakeparm())


def test_waterbody_missing_from_lakeparm_is_an_error_or_explicitly_channels() -> None:
    with pytest.raises(NwmLakeError, match=r"LAKEPARM has no lake_id \[100\].*missing='channel'"):
        nwm_lakes.collapse_lakes(routelink(), lakeparm([200]))
    out = nwm_lakes.collapse_lakes(routelink(), lakeparm([200]), missing="channel")
    assert out.lakes["lake_id"].tolist() == [200]
    assert 3 in out.links["link"].tolist() and 5 in out.links["link"].tolist()


def test_lakeparm_lake_on_no_link_is_an_error_or_dropped() -> None:
    with pytest.raises(NwmLakeError, match=r"LAKEPARM lake_id \[999\] is on no RouteLink link"):
        nwm_lakes.collapse_lakes(routelink(), lakeparm([100, 200, 999]))
    out = nwm_lakes.collapse_lakes(routelink(), lakeparm([100, 200, 999]), extra="drop")
    assert sorted(out.lakes["lake_id"].tolist()) == [100, 200]


def test_bad_inputs_named() -> None:
    with pytest.raises(KeyError, match="NHDWaterbodyComID"):
        nwm_lakes.collapse_lakes(routelink().drop(columns="NHDWaterbodyComID"), lakeparm())
    with pytest.raises(KeyError, match="ifd"):
        nwm_lakes.lakeparm_table(lakeparm().drop(columns="ifd"))
    with pytest.raises(NwmLakeError, match=r"duplicate lake_id \[100\]"):
        nwm_lakes.lakeparm_table(lakeparm([100, 100]))
    with pytest.raises(NwmLakeError, match=r"duplicate link \[1\]"):
        nwm_lakes.collapse_lakes(routelink(link=[1, 1, 3, 4, 5, 6, 7, 8, 9, 10]), lakeparm())


def test_lakeparm_names_map_to_the_schema() -> None:
    table = nwm_lakes.lakeparm_table(lakeparm([100]), source="LAKEPARM.nc")
    assert set(schema.LAKE_PARAMS) - set(schema.LAKE_OPTIONAL_PARAMS) <= set(table.columns)
    assert table.loc[0, "area_km2"] == 1.0 and table.loc[0, "orifice_elevation"] == 100.0
    assert table.loc[0, "source"] == "LAKEPARM.nc"
