"""The embedded synthetic shop: seeded, complete, and its context signals are measurable."""

import pandas as pd
import pytest

from oxy_dagster.data.contract import BEHAVIORS, SCENARIOS, SCENARIOS_WITH_TRIGGER
from oxy_dagster.data.synthetic import SyntheticConfig, generate
from oxy_dagster.data.synthetic import vocab as V

CFG = SyntheticConfig(n_users=600, seed=11)


@pytest.fixture(scope="module")
def world():
    t = generate(CFG)
    ev = t["events"].merge(t["items"][["item_id", "h_leaf", "price"]], on="item_id")
    ev = ev.merge(t["users"][["user_id", "h_city", "h_baby", "h_age", "h_gender", "h_tier"]], on="user_id")
    ev["month"] = pd.to_datetime(ev.timestamp).dt.month
    ev["leaf"] = [V.LEAVES[i] for i in ev.h_leaf]
    return t, ev


def test_seeded_and_deterministic():
    a, b = generate(SyntheticConfig(n_users=50, seed=3)), generate(SyntheticConfig(n_users=50, seed=3))
    pd.testing.assert_frame_equal(a["events"], b["events"])
    c = generate(SyntheticConfig(n_users=50, seed=4))
    assert not a["events"].equals(c["events"])


def test_uses_everything_the_contract_has(world):
    t, ev = world
    assert set(ev.behavior) == set(BEHAVIORS) and set(ev.scenario) == set(SCENARIOS)
    trig = ev.scenario.isin(SCENARIOS_WITH_TRIGGER)
    assert ev[trig].trigger_item_id.notna().all() and ev[~trig].trigger_item_id.isna().all()
    assert ev[ev.scenario == "search"]["query"].notna().all()
    assert ev[ev.scenario != "search"]["query"].isna().all()
    counts = ev.behavior.value_counts()
    assert counts["click"] > counts["cart"] > counts["purchase"] > 0
    assert t["items"].category_path.str.count(" > ").eq(2).all()
    assert t["users"].age_band.isna().mean() > 0.02  # some users have no profile
    assert pd.to_datetime(ev.timestamp).dt.month.nunique() == 12


def _share(ev, mask, pred):
    sub = ev[mask]
    return sub.leaf.map(pred).mean()


def test_season_and_climate_drive_demand(world):
    _, ev = world
    winter_item = lambda leaf: leaf.season == "winter"  # noqa: E731
    winter, summer = ev.month.isin([12, 1, 2]), ev.month.isin([6, 7, 8])
    assert _share(ev, winter, winter_item) > 2 * _share(ev, summer, winter_item)
    cold = ev.h_city.map(lambda c: "cold" in V.CITIES[c][1])
    cold_item = lambda leaf: leaf.climate == "cold"  # noqa: E731
    assert _share(ev, cold & winter, cold_item) > 1.5 * _share(ev, ~cold & winter, cold_item)


def test_persona_and_holidays_drive_demand(world):
    _, ev = world
    baby_item = lambda leaf: "baby" in leaf.personas  # noqa: E731
    assert _share(ev, ev.h_baby, baby_item) > 2 * _share(ev, ~ev.h_baby, baby_item)
    mooncake = lambda leaf: leaf.path[2] == "Mooncakes"  # noqa: E731
    ts = pd.to_datetime(ev.timestamp)
    before_mid_autumn = (ts >= "2025-09-22") & (ts <= "2025-10-06")
    assert _share(ev, before_mid_autumn, mooncake) > 3 * _share(ev, ~before_mid_autumn, mooncake)


def test_scenarios_follow_their_triggers(world):
    t, ev = world
    leaf_of = dict(zip(t["items"].item_id, t["items"].h_leaf))
    rel = ev[ev.scenario == "related"]
    assert (rel.trigger_item_id.map(leaf_of) == rel.h_leaf).all()
    cart = ev[ev.scenario == "cart"]
    comp = cart.apply(lambda r: V.LEAVES[r.h_leaf].path[2] in V.LEAVES[leaf_of[r.trigger_item_id]].complements,
                      axis=1)
    assert comp.all()
