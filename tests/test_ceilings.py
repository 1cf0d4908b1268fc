"""Ground-truth ceilings and chance (chatreid.demo.ceilings) on hand-built cases."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from chatreid.demo.ceilings import expected_ap_and_r1, trial_ceilings


def _ap(order_good) -> float:
    hits = np.flatnonzero(order_good)
    return float(np.mean([(k + 1) / (p + 1) for k, p in enumerate(hits)]))


def test_ties_give_the_expected_ap_over_every_order_of_the_tied():
    # scores 3, 2, 2, 1 with matches at the second and fourth: the tie {2, 2} is (match, other)
    # or (other, match), AP 1/2 or 5/12, so 11/24 expected; the first place is never a match
    ap, r1 = expected_ap_and_r1(np.array([3.0, 2, 2, 1]), np.array([False, True, False, True]))
    assert ap == pytest.approx(11 / 24) and r1 == 0.0


@pytest.mark.parametrize("good", [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
def test_all_tied_is_the_mean_over_all_orders(good):
    good = np.array(good, dtype=bool)
    orders = list(itertools.permutations(range(len(good))))
    want = np.mean([_ap(good[list(o)]) for o in orders])
    ap, r1 = expected_ap_and_r1(np.zeros(len(good)), good)
    assert ap == pytest.approx(want) and r1 == pytest.approx(good.mean())


def _row(gender="male", height=1.0, hair="short", upper="red", lower="blue"):
    return {"traits": {"gender": gender, "age": "adult", "height": height, "build": "average", "skin": [1, 2, 3],
                     "hair_style": hair, "hair_colour": "black"},
            "outfit": {"upper_color": upper, "lower_color": lower, "glasses": False}}


def test_cloth_changing_ceilings_on_a_hand_built_trial():
    # Query: person 1 in outfit a. Gallery: 0 person 1 in outfit a (same clothes: left out under
    # cc), 1 person 1 in outfit b, 2 person 2 wearing outfit a's colours, 3 person 3 who shares
    # all but the hair with person 1, in outfit b's colours.
    query = _row()
    gallery = [_row(), _row(upper="green", lower="black"), _row(gender="female", height=0.9),
               _row(hair="long", upper="green", lower="black")]
    q_items = [SimpleNamespace(pid=1, camid=1, clothes="1_a")]
    g_items = [SimpleNamespace(pid=p, camid=2, clothes_id=c) for p, c in ((1, "1_a"), (1, "1_b"), (2, "2_a"), (3, "3_a"))]
    out = trial_ceilings([query], q_items, gallery, g_items, "cc")
    # body: person 1 agrees on all 8 traits, person 3 on 7, person 2 on 6: the match is first
    assert out["body"]["mAP"] == pytest.approx(1.0) and out["body"]["rank1"] == 1.0
    # clothes: person 2 wears the query's colours (13 fields agree), the match and person 3 tie
    # (11): the match is second or third, AP (1/2 + 1/3) / 2
    assert out["clothes"]["mAP"] == pytest.approx(5 / 12) and out["clothes"]["rank1"] == 0.0
    # random over the three kept images, one match: (1 + 1/2 + 1/3) / 3
    assert out["random"]["mAP"] == pytest.approx(11 / 18) and out["random"]["rank1"] == pytest.approx(1 / 3)
    assert out["body"]["queries"] == 1
