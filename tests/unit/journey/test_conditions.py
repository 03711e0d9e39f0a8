"""Specification of every condition kind, each seen through a contact's stage."""

from __future__ import annotations

from shared.journey import Journey, TimerTick, Touchpoint, replay

from .messages import at, identify, journey, page, track

TWO_STAGES = """
id: conditions
version: 1
labels: {fi: Ehdot, en: Conditions}
stages:
  - {id: start, labels: {fi: Alku, en: Start}}
  - {id: goal, labels: {fi: Maali, en: Goal}}
rules:
  - id: reach-goal
    from: [start]
    to: goal
    when:
"""


def goal_when(condition: str) -> Journey:
    indented = "\n".join("      " + line for line in condition.strip().splitlines())
    return journey(TWO_STAGES + indented + "\n")


def stage_after(definition: Journey, *ticks: Touchpoint | TimerTick) -> str | None:
    state = replay(definition, ticks).state
    return state.stage if state else None


def test_event_matches_one_name_or_any_of_several() -> None:
    one = goal_when("event: Demo Requested")
    assert stage_after(one, page(), track("Demo Requested", at(1))) == "goal"
    assert stage_after(one, page(), track("Demo requested", at(1))) == "start"
    several = goal_when("event: [Demo Requested, Quote Requested]")
    assert stage_after(several, page(), track("Quote Requested", at(1))) == "goal"


def test_type_and_name_match_page_and_screen_calls() -> None:
    pricing = goal_when("{type: [page, screen], name: Pricing}")
    assert stage_after(pricing, page(), page(at(1), name="Pricing")) == "goal"
    assert stage_after(pricing, page(), page(at(1), name="Blog")) == "start"
    assert stage_after(pricing, page(), track("Pricing", at(1))) == "start"


def test_channel_matches_the_derived_channel() -> None:
    from_search = goal_when("{type: page, channel: search}")
    googled = page(at(1), context={"page": {"referrer": "https://www.google.com/"}})
    assert stage_after(from_search, page(), googled) == "goal"
    assert stage_after(from_search, page(), page(at(1))) == "start"


def test_property_operators() -> None:
    cases = {
        "{plan: pro}": ({"plan": "pro"}, {"plan": "free"}),
        "{plan: [pro, enterprise]}": ({"plan": "enterprise"}, {"plan": "free"}),
        "{plan: {equals: pro}}": ({"plan": "pro"}, {"plan": "Pro"}),
        "{plan: {in: [pro]}}": ({"plan": "pro"}, {}),
        "{coupon: {exists: true}}": ({"coupon": "X"}, {"coupon": None}),
        "{coupon: {exists: false}}": ({}, {"coupon": "X"}),
        "{revenue: {gt: 100}}": ({"revenue": 100.5}, {"revenue": 100}),
        "{revenue: {gte: 100}}": ({"revenue": 100}, {"revenue": "100"}),
        "{revenue: {lt: 10}}": ({"revenue": 9}, {"revenue": 10}),
        "{revenue: {lte: 10, gt: 0}}": ({"revenue": 10}, {"revenue": 0}),
        "{path: {contains: /products/}}": ({"path": "/products/kettle"}, {"path": "/blog"}),
        "{tags: {contains: b2b}}": ({"tags": ["b2b", "fi"]}, {"tags": ["b2c"]}),
        "{product.category: kettles}": ({"product": {"category": "kettles"}}, {"product": {}}),
        "{trial: true}": ({"trial": True}, {"trial": 1}),
    }
    for filters, (matching, other) in cases.items():
        definition = goal_when(f"{{event: Viewed, properties: {filters}}}")
        assert stage_after(definition, page(), track("Viewed", at(1), properties=matching)) == (
            "goal"
        ), filters
        assert stage_after(definition, page(), track("Viewed", at(1), properties=other)) == (
            "start"
        ), filters


def test_traits_are_merged_from_identify_calls_and_tested_on_later_touchpoints() -> None:
    big_company = goal_when("all: [{event: Event Attended}, {traits: {employees: {gte: 50}}}]")
    assert (
        stage_after(
            big_company,
            identify({"employees": 120}),
            track("Event Attended", at(1)),
        )
        == "goal"
    )
    assert (
        stage_after(
            big_company,
            identify({"employees": 120}),
            identify({"employees": 12}, at(0, 1)),
            track("Event Attended", at(1)),
        )
        == "start"
    )


def test_a_late_identify_does_not_overwrite_a_newer_trait() -> None:
    pro = goal_when("traits: {plan: pro}")
    newer_first = stage_after(
        pro, page(), identify({"plan": "pro"}, at(2)), identify({"plan": "free"}, at(1))
    )
    assert newer_first == "goal"


def test_count_needs_enough_matching_touchpoints_inside_the_window() -> None:
    seven_in_90_days = goal_when(
        "count: {matching: {type: [page, track]}, at_least: 7, within: 90d}"
    )
    six = [page(at(day)) for day in range(6)]
    assert stage_after(seven_in_90_days, *six) == "start"
    assert stage_after(seven_in_90_days, *six, page(at(10))) == "goal"
    spread_out = [page(at(day * 20)) for day in range(7)]
    assert stage_after(seven_in_90_days, *spread_out) == "start"


def test_count_without_a_window_counts_forever_and_without_matching_counts_everything() -> None:
    ever = goal_when("count: {at_least: 3}")
    assert stage_after(ever, page(), identify({"a": 1}, at(100)), track("E", at(400))) == "goal"


def test_score_sums_weights_and_reaches_the_threshold() -> None:
    scored = goal_when(
        """
        score:
          weights:
            - {matching: {type: page}, points: 1}
            - {matching: {event: Webinar Attended}, points: 20}
            - {matching: {event: Unsubscribed}, points: -15}
          at_least: 22
        """
    )
    assert stage_after(scored, page(), track("Webinar Attended", at(1))) == "start"
    assert stage_after(scored, page(), page(at(1)), track("Webinar Attended", at(2))) == "goal"
    assert (
        stage_after(
            scored,
            page(),
            track("Unsubscribed", at(0, 1)),
            page(at(1)),
            track("Webinar Attended", at(2)),
        )
        == "start"
    )


def test_score_with_a_half_life_forgets_old_engagement() -> None:
    decaying = goal_when(
        """
        score:
          weights: [{matching: {event: Webinar Attended}, points: 20}]
          at_least: 30
          half_life: 7d
        """
    )
    assert (
        stage_after(
            decaying, page(), track("Webinar Attended", at(1)), track("Webinar Attended", at(2))
        )
        == "goal"
    )
    # The first 20 points have decayed below 10 eight days later, so the total stays under 30.
    assert (
        stage_after(
            decaying, page(), track("Webinar Attended", at(1)), track("Webinar Attended", at(9))
        )
        == "start"
    )


def test_inactive_for_fires_from_a_timer_without_any_new_touchpoint() -> None:
    quiet = goal_when("inactive_for: 30d")
    assert stage_after(quiet, page(), TimerTick(at(29))) == "start"
    assert stage_after(quiet, page(), TimerTick(at(30))) == "goal"
    assert stage_after(quiet, page(), page(at(20)), TimerTick(at(30))) == "start"


def test_in_stage_for_counts_from_entering_the_stage_even_with_activity() -> None:
    stale = goal_when("in_stage_for: 14d")
    busy = [page(at(day)) for day in range(0, 14, 2)]
    assert stage_after(stale, *busy, TimerTick(at(13))) == "start"
    assert stage_after(stale, *busy, TimerTick(at(14))) == "goal"


def test_all_any_and_not_combine_conditions() -> None:
    combined = goal_when(
        """
        all:
          - any: [{event: Demo Requested}, {event: Quote Requested}]
          - not: {properties: {internal: true}}
        """
    )
    assert stage_after(combined, page(), track("Quote Requested", at(1))) == "goal"
    internal = track("Quote Requested", at(1), properties={"internal": True})
    assert stage_after(combined, page(), internal) == "start"


def test_settings_side_by_side_in_one_condition_must_all_hold() -> None:
    both = goal_when("{event: Demo Requested, traits: {persona: cto}}")
    assert stage_after(both, page(), track("Demo Requested", at(1))) == "start"
    assert stage_after(both, identify({"persona": "cto"}), track("Demo Requested", at(1))) == "goal"
