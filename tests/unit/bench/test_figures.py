"""`make bench`'s one table and its JSON record: what each column says, which aims count as
met, and that a run written to disk reads back with its date, commit, machine and figures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from bench.figures import (
    Figure,
    all_met,
    count,
    failed,
    machine,
    number,
    ratio_text,
    record,
    rows,
    table,
    write_record,
)
from bench.stager import PeerRun, Scenario, StagerRun, rate_figure, scale_figures

STAGER = Figure("stager", 9_000.0, "ev/s", 30_000.0, "consume + dedupe", 6_000.0, "Quix Streams",
                ">= 12,000 ev/s", met=False, note="measured on a busy machine")
LATENCY = Figure("p99", 120.0, "ms", 4.2, "raw Kafka hop", aim="<= 150 ms", met=True)


def test_the_ratio_is_against_the_peer_when_there_is_one_else_against_the_baseline() -> None:
    assert STAGER.ratio == 1.5 and STAGER.ratio_of == "peer"
    assert LATENCY.ratio is not None and round(LATENCY.ratio, 2) == 28.57
    assert LATENCY.ratio_of == "baseline"
    assert Figure("alone", 5.0, "ms").ratio is None
    assert failed("broken", "ev/s", "the peer's environment is missing").ratio is None


def test_the_table_has_one_row_per_figure_with_units_names_ratio_and_verdict() -> None:
    header, stager, latency = rows([STAGER, LATENCY])
    assert header == ["figure", "Polku", "baseline", "peer", "ratio", "aim", "met"]
    assert stager == ["stager", "9,000 ev/s", "30,000 ev/s (consume + dedupe)",
                      "6,000 ev/s (Quix Streams)", "1.50x peer", ">= 12,000 ev/s", "NO"]
    assert latency[1:5] == ["120 ms", "4.2 ms (raw Kafka hop)", "-", "28.6x baseline"]
    assert latency[6] == "yes"


def test_the_table_is_markdown_with_aligned_columns_and_the_notes_below() -> None:
    broken = failed("bench.funnel", "ms", "RuntimeError: boom")
    lines = table([STAGER, LATENCY, broken]).splitlines()
    assert lines[0].startswith("| figure ") and set(lines[1]) <= {"|", "-"}
    assert len({len(line) for line in lines[:5]}) == 1  # header, rule and three rows align
    assert [cell.strip() for cell in lines[4].strip("|").split("|")] == [
        "bench.funnel", "-", "-", "-", "-", "-", "-"]  # not measured: no value, no verdict
    assert lines[5:] == ["- stager: measured on a busy machine",
                         "- bench.funnel: not measured: RuntimeError: boom"]


def test_numbers_group_thousands_and_keep_one_decimal_below_a_hundred() -> None:
    assert number(12_345.6, "ev/s") == "12,346 ev/s"
    assert number(71.25, "ms") == "71.2 ms"
    assert number(None, "ms") == "-"
    assert [ratio_text(r) for r in (0.456, 28.57, 28_865.1)] == ["0.46", "28.6", "28,865"]
    assert [count(n) for n in (200_000, 1_000_000, 1_500_000, 500)] == [
        "200k", "1M", "1.5M", "500"]


def test_an_aim_is_met_only_when_every_part_is() -> None:
    assert all_met(True, True) is True
    assert all_met(True, False) is False
    assert all_met(True, None) is None  # a part that could not be judged
    assert all_met(False, None) is False


def test_a_run_is_written_as_json_with_date_commit_machine_and_every_figure(
        tmp_path: Path) -> None:
    started = datetime(2026, 12, 2, 8, 30, tzinfo=UTC)
    host = machine()
    assert host["cores"] >= 1 and host["memory_gib"] > 0 and host["kernel"] and host["python"]
    data = record([STAGER, LATENCY], started, 812.4, host, {"sha": "abc123", "dirty": False},
                  {"scale_events": 1_000_000})
    path = write_record(data, tmp_path / "results" / "latest.json")
    back = json.loads(path.read_text(encoding="utf-8"))
    assert back["date"] == "2026-12-02T08:30:00+00:00" and back["seconds"] == 812.4
    assert back["commit"] == {"sha": "abc123", "dirty": False}
    assert back["machine"]["cores"] == host["cores"]
    assert back["options"] == {"scale_events": 1_000_000}
    first = back["figures"][0]
    assert first["name"] == "stager" and first["polku"] == 9_000.0
    assert first["peer_name"] == "Quix Streams" and first["ratio"] == 1.5
    assert first["ratio_of"] == "peer" and first["met"] is False


def _stager_run(rate: float, rss_start: float = 200.0, rss_end: float = 210.0,
                peak: float = 250.0) -> StagerRun:
    return StagerRun(100.0, int(rate * 100), 1_000, rss_start, rss_end, peak)


def test_the_stager_aim_needs_both_the_rate_and_one_and_a_half_times_the_peer() -> None:
    def met(polku: float, peer: float) -> bool | None:
        scenario = Scenario(200_000, 100_000, stager=_stager_run(polku),
                            peer=PeerRun(100.0, int(peer * 100), 1_000, 900.0, 120.0))
        return rate_figure(scenario).met

    assert met(13_000, 8_000) is True
    assert met(13_000, 9_000) is False  # 1.44x the peer
    assert met(11_000, 5_000) is False  # under 12,000 ev/s
    no_peer = rate_figure(Scenario(200_000, 100_000, stager=_stager_run(13_000),
                                   peer_problem="missing"))
    assert no_peer.met is None and no_peer.note == "peer not measured: missing"


def test_with_many_contacts_the_rate_is_held_against_the_reference_and_rss_must_stay_flat() -> None:
    reference = Scenario(200_000, 100_000, stager=_stager_run(10_000))
    steady = Scenario(1_000_000, 1_000_000, stager=_stager_run(8_500))
    rate, rss = scale_figures(steady, reference)
    assert rate.baseline == 10_000 and rate.met is True
    assert rss.polku == 250.0 and rss.met is True
    growing = Scenario(1_000_000, 1_000_000, stager=_stager_run(7_000, 200.0, 260.0, 280.0))
    rate, rss = scale_figures(growing, reference)
    assert rate.met is False  # 0.7x the reference
    assert rss.met is False  # 30 % more at the end than at the start
    assert "200 MiB a tenth of the way, 260 MiB at the end" in rss.note
