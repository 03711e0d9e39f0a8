"""The console in a real browser (headless Chromium through Selenium), against a running Polku
with known data: what the page shows must be what the APIs answer.

The embedded mode is started once for the module and filled with a few crafted contacts; the
distributed mode gets a test of its own. Screenshots of every page a test looks at are kept in
.polku/test-artefacts/console/; the ones the README shows are written to docs/screenshots/.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.support.ui import Select

from shared.settings import DatabaseSettings, KafkaSettings
from tests.actions_harness import eventually
from tests.browser import Browser, chromium, missing
from tests.deployments import Deployment, deploy, running
from tests.processes import ROOT

ARTEFACTS = ROOT / ".polku" / "test-artefacts" / "console"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"

TRIALS = """
id: trials
version: 3
labels: {fi: Kokeilut, en: Trials}
stages:
  - {id: visitor, labels: {fi: Vierailija, en: Visitor}}
  - {id: lead, labels: {fi: Liidi, en: Lead}}
  - {id: customer, labels: {fi: Asiakas, en: Customer}}
rules:
  - {id: signed-up, from: [visitor], to: lead, when: {event: Signed Up},
     reason: signed up for a trial}
  - {id: bought, from: [lead], to: customer, when: {event: Order Completed},
     reason: paid for a plan}
  - {id: refunded, from: [customer], to: lead, when: {event: Refund Requested},
     reason: asked for the money back}
"""

SUPPORT = """
id: support
version: 1
labels: {fi: Tuki, en: Support}
entry: {event: Ticket Opened}
stages:
  - {id: open, labels: {fi: Avoin, en: Open}}
  - {id: solved, labels: {fi: Ratkaistu, en: Solved}}
rules:
  - {id: solved, from: [open], to: solved, when: {event: Ticket Solved}}
"""

# What each crafted contact does, in order, a day apart; and the stage it ends in.
STORIES: dict[str, tuple[list[str], str]] = {
    "bought": (["page", "Signed Up", "Order Completed"], "customer"),
    "signed-up": (["page", "Signed Up"], "lead"),
    "looked": (["page"], "visitor"),
    "refunded": (["page", "Signed Up", "Order Completed", "Refund Requested", "Ticket Opened"],
                 "lead"),
}
# A trait that would run script if the page ever put it in as HTML.
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1">'


def journeys_dir(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "trials.yaml").write_text(TRIALS)
    (directory / "support.yaml").write_text(SUPPORT)
    return directory


def story_events(contact: str, steps: list[str], start: datetime, channel: str
                 ) -> list[dict[str, Any]]:
    # The identify comes after the first page view, whose channel is the first touch.
    events: list[dict[str, Any]] = [{
        "type": "identify", "userId": contact, "messageId": str(uuid.uuid4()),
        "timestamp": (start + timedelta(minutes=2)).isoformat(),
        "traits": {"plan": "pro" if "Order Completed" in steps else "free", "note": HOSTILE},
    }]
    for day, step in enumerate(steps):
        at = (start + timedelta(days=day, minutes=1)).isoformat()
        if step == "page":
            events.append({"type": "page", "name": "Pricing", "userId": contact,
                           "messageId": str(uuid.uuid4()), "timestamp": at,
                           "properties": {"path": "/pricing", "channel": channel}})
        else:
            events.append({"type": "track", "event": step, "userId": contact,
                           "messageId": str(uuid.uuid4()), "timestamp": at})
    return events


async def tell_stories(polku: Deployment, tag: str) -> dict[str, str]:
    """Post every story (event times in the last two weeks); wait until each contact is in its
    final stage. Returns story -> contact id."""
    contacts = {story: f"console-{tag}-{story}" for story in STORIES}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=12)
    batch = [event for i, (story, (steps, _)) in enumerate(STORIES.items())
             for event in story_events(contacts[story], steps, start + timedelta(hours=i),
                                       "email" if i % 2 else "search")]
    async with polku.client() as http:
        answer = await http.post("/v1/batch", json={"batch": batch})
        assert answer.status_code == 200, answer.text

    async def all_arrived() -> bool:
        return all([await polku.stage(contacts[story], "trials") == stage
                    for story, (_, stage) in STORIES.items()])

    await eventually(all_arrived, timeout_s=40, what="every story told")
    return contacts


def snap(browser: Browser, name: str, docs: bool = False) -> None:
    browser.screenshot(ARTEFACTS / f"{name}.png")
    if docs:
        browser.screenshot(DOCS_SCREENSHOTS / f"{name}.png")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if (why := missing()) is not None:
        pytest.fail(why)
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
async def embedded(tmp_path_factory: pytest.TempPathFactory
                   ) -> AsyncIterator[tuple[Deployment, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("console")
    polku = deploy("embedded", journeys_dir(tmp / "journeys"), tmp, None, None)
    async with running(polku):
        yield polku, await tell_stories(polku, uuid.uuid4().hex[:6])


@pytest.fixture
def polku(embedded: tuple[Deployment, dict[str, str]]) -> Deployment:
    return embedded[0]


@pytest.fixture
def contacts(embedded: tuple[Deployment, dict[str, str]]) -> dict[str, str]:
    return embedded[1]


def analytics_served(polku: Deployment) -> bool:
    """Whether this build serves /v1/analytics (the console's analytics views need it)."""
    answer = httpx.get(polku.api.url + "/v1/analytics/journeys/trials/flows", timeout=10)
    return answer.status_code != 404 or answer.json().get("field") != "path"


@pytest.fixture
def analytics(polku: Deployment) -> None:
    if not analytics_served(polku):
        pytest.skip("this build has no analytics API (/v1/analytics) to show")


def api(polku: Deployment, path: str, **params: str) -> Any:
    answer = httpx.get(polku.api.url + path, params=params, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- serving -------------------------------------------------------------------------------

def test_the_page_and_its_files_are_served_with_cache_and_security_headers(
    polku: Deployment
) -> None:
    page = httpx.get(polku.api.url + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    script = httpx.get(polku.api.url + "/console/js/main.js", timeout=10)
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache"
    again = httpx.get(polku.api.url + "/console/js/main.js", timeout=10,
                      headers={"if-none-match": script.headers["etag"]})
    assert again.status_code == 304  # revalidated, not downloaded again
    vendored = httpx.get(polku.api.url + "/console/vendor/echarts-6.1.0/echarts.min.js",
                         timeout=10)
    assert vendored.status_code == 200
    assert vendored.headers["cache-control"] == "public, max-age=31536000, immutable"
    for name in ("LICENSE", "NOTICE", "LICENSE-zrender", "LICENSE-d3", "README.md"):
        assert httpx.get(polku.api.url + f"/console/vendor/echarts-6.1.0/{name}",
                         timeout=10).status_code == 200
    missing_file = httpx.get(polku.api.url + "/console/js/nothing.js", timeout=10)
    assert missing_file.status_code == 404
    assert "/v1/journeys" in httpx.get(polku.api.url + "/openapi.json", timeout=10).text
    assert '"/"' not in httpx.get(polku.api.url + "/openapi.json", timeout=10).text


def test_the_page_loads_nothing_from_elsewhere_and_logs_no_error(
    polku: Deployment, browser: Browser
) -> None:
    browser.open(polku.api.url + "/#/journeys")
    loaded = browser.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert any(url.endswith("/echarts.min.js") for url in loaded)
    assert all(url.startswith(polku.api.url + "/") for url in loaded), loaded
    assert browser.driver.execute_script("return typeof echarts.init") == "function"
    errors = browser.errors()
    if not analytics_served(polku):  # the page says so, after a 404 from the API
        errors = [e for e in errors if "/v1/analytics/" not in e]
    assert errors == []


# -- journeys ------------------------------------------------------------------------------

def test_the_journeys_page_lists_every_journey_and_stage_the_api_has(
    polku: Deployment, browser: Browser
) -> None:
    browser.open(polku.api.url + "/#/journeys")
    expected = api(polku, "/v1/journeys")["journeys"]
    cards = browser.all("section.journey")
    assert [card.get_attribute("data-journey") for card in cards] == [j["id"] for j in expected]
    for card, journey in zip(cards, expected, strict=True):
        assert card.find_element("css selector", "h2").text == journey["labels"]["en"]
        stages = card.find_elements("css selector", "ol.stages li")
        assert [s.get_attribute("data-stage") for s in stages] == [s["id"] for s in
                                                                   journey["stages"]]
        assert [s.find_element("css selector", "a").text for s in stages] == [
            s["labels"]["en"] for s in journey["stages"]]
    snap(browser, "journeys")


def test_an_unknown_journey_is_said_to_be_unknown(polku: Deployment, browser: Browser) -> None:
    browser.open(polku.api.url + "/#/journeys/no-such-journey")
    assert browser.find("main .error").text == "There is no journey no-such-journey."


# -- contacts ------------------------------------------------------------------------------

def test_the_contact_page_shows_every_journey_its_stage_and_why_it_is_there(
    polku: Deployment, contacts: dict[str, str], browser: Browser
) -> None:
    contact = contacts["refunded"]
    person = api(polku, f"/v1/contacts/{contact}")
    browser.open(polku.api.url + f"/#/contacts/{contact}")
    assert browser.find("#contact-title").text == f"Contact {contact}"
    cards = browser.all("section.contact-journey")
    assert [c.get_attribute("data-journey") for c in cards] == [
        j["journey"] for j in person["journeys"]] == ["support", "trials"]
    for card, view in zip(cards, person["journeys"], strict=True):
        shown = card.find_element("css selector", ".current-stage")
        assert shown.get_attribute("data-stage") == view["stage"]["id"]
        assert shown.text == view["stage"]["labels"]["en"]
        rows = card.find_elements("css selector", "table.timeline tbody tr")
        assert [(r.get_attribute("data-from") or None, r.get_attribute("data-to"),
                 r.get_attribute("data-rule") or None, r.get_attribute("data-transition"))
                for r in rows] == [(t["from"], t["to"], t["rule"], t["transition_id"])
                                   for t in view["history"]]
        for row, transition in zip(rows, view["history"], strict=True):
            cells = [td.text for td in row.find_elements("css selector", "td")]
            assert cells[3] == (transition["reason"] or "—")
            assert transition["cause"] in cells[4]  # the event's messageId
    trials = next(j for j in person["journeys"] if j["journey"] == "trials")
    assert [(t["from"], t["to"]) for t in trials["history"]] == [
        (None, "visitor"), ("visitor", "lead"), ("lead", "customer"), ("customer", "lead")]
    why = cards[1].find_element("css selector", ".why").text
    assert "Moved to Lead" in why and "by rule refunded" in why
    assert trials["history"][-1]["reason"] in why
    # Traits are shown as text: the hostile one did not become an element.
    assert HOSTILE in cards[1].find_element("css selector", "table.traits").text
    assert browser.driver.execute_script("return document.body.dataset.pwned") is None
    snap(browser, "contact", docs=True)


def test_a_contact_is_found_by_its_id_and_an_unknown_one_is_said_to_be_unknown(
    polku: Deployment, contacts: dict[str, str], browser: Browser
) -> None:
    browser.open(polku.api.url + "/#/contacts")
    browser.find("#contact-id").send_keys(contacts["bought"])
    browser.find("#find-by-id button").click()
    browser.wait(lambda: browser.all("#contact-title"), "the contact page")
    assert browser.find("#contact-title").get_attribute("data-contact") == contacts["bought"]
    assert browser.find("section[data-journey=trials] .current-stage").text == "Customer"
    browser.open(polku.api.url + "/#/contacts/nobody-at-all")
    assert "No journey has seen a contact nobody-at-all" in browser.find("#unknown-contact").text


# -- languages -----------------------------------------------------------------------------

def test_the_language_switch_shows_the_journeys_own_finnish_labels_and_is_remembered(
    polku: Deployment, contacts: dict[str, str], browser: Browser
) -> None:
    browser.open(polku.api.url + "/#/journeys")
    missing_keys = browser.driver.execute_async_script(
        "const done = arguments[0];"
        "import('/console/js/i18n.js').then(m => done(m.missingKeys()));")
    assert missing_keys == []
    expected = api(polku, "/v1/journeys")["journeys"]
    assert browser.find("#language").text == "Suomeksi"
    browser.find("#language").click()
    browser.wait(lambda: browser.find("h1").text == "Polut", "the Finnish page")
    assert browser.driver.execute_script("return document.documentElement.lang") == "fi"
    assert browser.texts("section.journey h2") == [j["labels"]["fi"] for j in expected]
    trials = next(j for j in expected if j["id"] == "trials")
    assert browser.texts("section[data-journey=trials] ol.stages a") == [
        s["labels"]["fi"] for s in trials["stages"]]
    assert browser.find("#nav-contacts").text == "Kontaktit"
    snap(browser, "journeys-fi")
    browser.open(polku.api.url + f"/#/contacts/{contacts['refunded']}")
    assert browser.find("#contact-title").text == f"Kontakti {contacts['refunded']}"
    assert browser.find("section[data-journey=trials] .current-stage").text == "Liidi"
    assert "Miksi kontakti on täällä?" in browser.find("section[data-journey=trials] .why").text
    browser.driver.refresh()  # the choice is kept in the browser
    browser.wait(lambda: browser.find("#contact-title").text.startswith("Kontakti"), "fi again")
    browser.find("#language").click()
    browser.wait(lambda: browser.find("#contact-title").text.startswith("Contact"), "English")


# -- the journey map's drawing -------------------------------------------------------------

def test_the_map_draws_moves_back_as_return_nodes_so_the_sankey_has_no_cycle(
    polku: Deployment, browser: Browser
) -> None:
    browser.open(polku.api.url + "/#/journeys")
    flows: dict[str, list[dict[str, Any]]] = {
        "nodes": [{"stage": "a", "still_in": 1}, {"stage": "b", "still_in": 2},
                  {"stage": "c", "still_in": 3}],
        "links": [{"from": None, "to": "a", "count": 10, "backward": False},
                  {"from": "a", "to": "b", "count": 7, "backward": False},
                  {"from": "a", "to": "c", "count": 1, "backward": False},
                  {"from": "b", "to": "c", "count": 5, "backward": False},
                  {"from": "c", "to": "a", "count": 2, "backward": True},
                  {"from": "b", "to": "a", "count": 1, "backward": True},
                  {"from": "c", "to": "c", "count": 1, "backward": True}],
    }
    drawn = browser.driver.execute_async_script("""
        const [flows, done] = arguments;
        import('/console/js/flows.js').then((m) => {
          const texts = {entered: 'in', back: (s) => 'back to ' + s, stillHere: (n) => n + ' here'};
          const sankey = m.sankeyOf(flows, ['a', 'b', 'c'], (s) => s.toUpperCase(), texts);
          const el = document.createElement('div');
          el.style.width = '800px'; el.style.height = '400px';
          document.body.append(el);
          const chart = echarts.init(el);
          let error = null;
          try { chart.setOption(m.sankeyOption(sankey, () => '')); }
          catch (e) { error = String(e); }
          const width = chart.getWidth();
          chart.dispose(); el.remove();
          done({sankey, error, width});
        });""", flows)
    assert drawn["error"] is None and drawn["width"] == 800
    sankey = drawn["sankey"]
    depth = {node["name"]: node["depth"] for node in sankey["nodes"]}
    assert all(depth[link["target"]] > depth[link["source"]] for link in sankey["links"])
    assert sum(link["value"] for link in sankey["links"]) == sum(
        link["count"] for link in flows["links"])
    back = sorted((link["source"], link["target"], link["value"]) for link in sankey["links"]
                  if link["target"].startswith("back:"))
    assert back == [("stage:b", "back:b:a", 1), ("stage:c", "back:c:a", 2),
                    ("stage:c", "back:c:c", 1)]
    assert sankey["labels"]["back:c:a"] == "back to A"
    assert sankey["labels"]["stage:b"] == "B\n2 here"
    assert [(b["from"], b["to"]) for b in sankey["backward"]] == [("c", "a"), ("b", "a"),
                                                                  ("c", "c")]


# -- sign-in -------------------------------------------------------------------------------

READ_TOKEN = "console-read-" + "r" * 20


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Deployment]:
    """The embedded mode with its API tokens set: the read API asks even loopback clients."""
    polku = deploy("embedded", journeys_dir(tmp_path / "journeys"), tmp_path, None, None,
                   POLKU_INGEST_READ_TOKEN=READ_TOKEN,
                   POLKU_INGEST_ADMIN_TOKEN="console-admin-" + "a" * 20,
                   POLKU_ACTIONS_ADMIN_TOKEN="console-actions-" + "d" * 20)
    async with running(polku):
        yield polku


async def test_with_a_read_token_set_the_page_asks_for_it_and_keeps_it_for_the_tab_only(
    guarded: Deployment, browser: Browser
) -> None:
    contact = f"console-guarded-{uuid.uuid4().hex[:6]}"
    async with guarded.client() as http:
        answer = await http.post("/v1/track", json={"type": "track", "event": "Ticket Opened",
                                                     "userId": contact})
        assert answer.status_code == 200, answer.text
        assert (await http.get("/v1/journeys")).status_code == 401

    browser.open(guarded.api.url + f"/#/contacts/{contact}")
    form = browser.find("form#signin")
    assert "read token" in form.text
    assert not browser.find("#sign-out").is_displayed()
    browser.find("#token").send_keys("not-the-token")
    browser.find("form#signin button").click()
    browser.wait(lambda: browser.find("form#signin .error").is_displayed(), "the refusal")
    assert browser.find("form#signin .error").text == "That token was refused."
    snap(browser, "sign-in")

    browser.find("#token").clear()
    browser.find("#token").send_keys(READ_TOKEN)
    browser.find("form#signin button").click()
    browser.wait(lambda: browser.all("#contact-title"), "the contact page after signing in")
    # The stager may not have applied the event yet; the page refreshes itself until it has.
    browser.wait(lambda: browser.all("section[data-journey=support] .current-stage"),
                 "the contact in the support journey")
    assert browser.find("section[data-journey=support] .current-stage").text == "Open"
    assert browser.driver.execute_script(
        "return sessionStorage.getItem('polku.readToken')") == READ_TOKEN
    assert browser.driver.execute_script(
        "return localStorage.getItem('polku.readToken')") is None
    browser.open(guarded.api.url + "/#/journeys")  # a reload in the same tab keeps it
    assert browser.texts("section.journey h2") == ["Support", "Trials"]

    browser.find("#sign-out").click()
    browser.wait(lambda: browser.all("form#signin"), "the sign-in form after signing out")
    assert browser.driver.execute_script(
        "return sessionStorage.getItem('polku.readToken')") is None


# -- the distributed mode ------------------------------------------------------------------

@pytest.fixture
async def distributed(tmp_path: Path, topic_names: KafkaSettings,
                      own_database: DatabaseSettings) -> AsyncIterator[Deployment]:
    polku = deploy("distributed", journeys_dir(tmp_path / "journeys"), tmp_path, topic_names,
                   own_database)
    async with running(polku):
        yield polku


async def test_ingest_serves_the_same_console_in_the_distributed_mode(
    distributed: Deployment, browser: Browser
) -> None:
    contacts = await tell_stories(distributed, uuid.uuid4().hex[:6])
    browser.open(distributed.api.url + "/#/journeys")
    expected = api(distributed, "/v1/journeys")["journeys"]
    assert browser.texts("section.journey h2") == [j["labels"]["en"] for j in expected]

    for story, (_, stage) in STORIES.items():
        person = api(distributed, f"/v1/contacts/{contacts[story]}")
        trials = next(j for j in person["journeys"] if j["journey"] == "trials")
        browser.open(distributed.api.url + f"/#/contacts/{contacts[story]}")
        card = browser.find("section[data-journey=trials]")
        assert card.find_element("css selector", ".current-stage").get_attribute(
            "data-stage") == stage == trials["stage"]["id"]
        rows = card.find_elements("css selector", "table.timeline tbody tr")
        assert [r.get_attribute("data-transition") for r in rows] == [
            t["transition_id"] for t in trials["history"]]


# -- the analytics views (journey map, funnel, time in stage, contacts in a stage) ----------

def period_of(browser: Browser) -> dict[str, str]:
    form = browser.find("form#period")
    return {"from": form.get_attribute("data-api-from") or "",
            "to": form.get_attribute("data-api-to") or ""}


def metric(row: Any, name: str) -> str:
    return str(row.find_element("css selector", f"td[data-metric={name}]").text)


def percent(x: float | None) -> str:
    """A share as the English page writes it (js/format.js)."""
    return "—" if x is None else f"{x * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """Seconds as the page writes them (js/format.js): the two largest units, zeros left out."""
    if seconds is None:
        return "—"
    parts: list[str] = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        n = rest // size
        if n > 0 or (unit == "s" and not parts):
            parts.append(f"{n} {unit}")
        rest -= n * size
        if len(parts) == 2:
            break
    return " ".join(parts)


def test_the_journeys_page_counts_the_contacts_still_in_each_stage_as_the_flows_api_does(
    polku: Deployment, browser: Browser, analytics: None
) -> None:
    browser.open(polku.api.url + "/#/journeys")
    flows = api(polku, "/v1/analytics/journeys/trials/flows")
    still = {node["stage"]: node["still_in"] for node in flows["nodes"]}
    shown = {li.get_attribute("data-stage"): li.find_element("css selector", ".count").text
             for li in browser.all("section[data-journey=trials] ol.stages li")}
    assert shown == {stage: str(still.get(stage, 0)) for stage in shown}
    assert still["lead"] >= 2 and still["customer"] >= 1


def test_the_map_shows_the_flows_of_the_period_with_moves_back(
    polku: Deployment, browser: Browser, analytics: None
) -> None:
    browser.open(polku.api.url + "/#/journeys/trials")
    browser.find("#map-chart canvas")
    flows = api(polku, "/v1/analytics/journeys/trials/flows", **period_of(browser))
    rows = browser.all("table.stages-table tbody tr")
    assert [r.get_attribute("data-stage") for r in rows] == ["visitor", "lead", "customer"]
    for row in rows:
        stage = row.get_attribute("data-stage")
        assert metric(row, "in") == str(sum(move["count"] for move in flows["links"]
                                            if move["to"] == stage))
        assert metric(row, "out") == str(sum(move["count"] for move in flows["links"]
                                             if move["from"] == stage))
        assert metric(row, "still_in") == str(next(
            (n["still_in"] for n in flows["nodes"] if n["stage"] == stage), 0))
    backward = [(move["from"], move["to"], move["count"]) for move in flows["links"]
                if move["backward"]]
    assert backward == [("customer", "lead", 1)]
    assert [(r.get_attribute("data-from"), r.get_attribute("data-to"), metric(r, "count"))
            for r in browser.all("table.backward tbody tr")] == [("customer", "lead", "1")]
    snap(browser, "journey-map-trials")


def test_the_funnel_shows_the_api_numbers_in_both_modes_and_split_by_channel(
    polku: Deployment, browser: Browser, analytics: None
) -> None:
    browser.open(polku.api.url + "/#/journeys/trials/funnel")
    browser.find("#funnel-chart canvas")
    for mode in ("in_order", "any_order"):
        if mode == "any_order":
            drawn = browser.drawn()
            browser.find("input[name=mode][value=any_order]").click()
            browser.wait_drawn(after=drawn)
        period = period_of(browser)
        funnel = api(polku, "/v1/analytics/journeys/trials/funnel", mode=mode, split="none",
                     **period)
        assert funnel["mode"] == mode
        rows = browser.all("table.funnel-table tbody tr")
        assert [r.get_attribute("data-stage") for r in rows] == [s["stage"] for s in
                                                                 funnel["stages"]]
        for row, stage in zip(rows, funnel["stages"], strict=True):
            assert metric(row, "reached") == str(stage["reached"])
            assert metric(row, "dropped") == str(stage["dropped"])
            assert metric(row, "conversion_to_next") == percent(stage["conversion_to_next"])
            assert metric(row, "conversion_from_first") == percent(
                stage["conversion_from_first"])
        assert [int(metric(r, "reached")) for r in rows][:1] == [4]  # every story
    drawn = browser.drawn()
    Select(browser.find("select[name=split]")).select_by_value("channel")
    browser.wait_drawn(after=drawn)
    funnel = api(polku, "/v1/analytics/journeys/trials/funnel", mode="any_order",
                 split="channel", **period_of(browser))
    keys = [d.get_attribute("data-key") for d in browser.all("details.split")]
    assert keys == [part["key"] for part in funnel["splits"]]
    assert set(keys) == {"search", "email"}
    for part in funnel["splits"]:
        browser.find(f"details.split[data-key='{part['key']}'] summary").click()
        rows = browser.all(f"table.funnel-table tbody tr[data-split='{part['key']}']")
        assert [metric(r, "reached") for r in rows] == [str(s["reached"])
                                                        for s in part["stages"]]


def test_time_in_stage_shows_the_visits_of_the_funnel_api(
    polku: Deployment, browser: Browser, analytics: None
) -> None:
    browser.open(polku.api.url + "/#/journeys/trials/time")
    browser.find("#time-chart canvas")
    funnel = api(polku, "/v1/analytics/journeys/trials/funnel", mode="any_order",
                 split="none", **period_of(browser))
    rows = browser.all("table.time-table tbody tr")
    assert [(r.get_attribute("data-stage"), metric(r, "visits")) for r in rows] == [
        (s["stage"], str(s["time_in_stage"]["visits"])) for s in funnel["stages"]]
    assert [(metric(r, "median_s"), metric(r, "p90_s")) for r in rows] == [
        (duration(s["time_in_stage"]["median_s"]), duration(s["time_in_stage"]["p90_s"]))
        for s in funnel["stages"]]
    visitor = next(s for s in funnel["stages"] if s["stage"] == "visitor")
    assert 86000 < visitor["time_in_stage"]["median_s"] <= 86400  # signed up a day after


def test_a_journey_leads_to_its_stage_and_the_stage_to_its_contacts(
    polku: Deployment, contacts: dict[str, str], browser: Browser, analytics: None
) -> None:
    browser.open(polku.api.url + "/#/journeys")
    drawn = browser.drawn()
    browser.find("section[data-journey=trials] h2 a").click()
    browser.wait_drawn(after=drawn)
    assert browser.find("h1").text == "Trials"
    drawn = browser.drawn()
    browser.find("table.stages-table tr[data-stage=lead] a").click()
    browser.wait_drawn(after=drawn)
    assert browser.find("h1").text == "Lead · Trials"
    listed = api(polku, "/v1/analytics/journeys/trials/contacts", stage="lead")
    rows = browser.all("#stage-contacts tbody tr")
    assert [r.get_attribute("data-contact") for r in rows] == [
        c["contact"] for c in listed["contacts"]]
    assert {contacts["signed-up"], contacts["refunded"]} <= {
        r.get_attribute("data-contact") for r in rows}
    snap(browser, "stage-contacts")
    drawn = browser.drawn()
    browser.find(f"#stage-contacts tr[data-contact='{contacts['refunded']}'] a").click()
    browser.wait_drawn(after=drawn)
    assert browser.find("#contact-title").get_attribute("data-contact") == contacts["refunded"]
    assert browser.find("section[data-journey=trials] .current-stage").text == "Lead"


def test_contacts_are_found_by_a_trait(
    polku: Deployment, contacts: dict[str, str], browser: Browser, analytics: None
) -> None:
    browser.open(polku.api.url + "/#/contacts")
    Select(browser.find("#trait-journey")).select_by_value("trials")
    browser.find("#trait-name").send_keys("plan")
    browser.find("#trait-value").send_keys("pro")
    drawn = browser.drawn()
    browser.find("#find-by-trait button").click()
    browser.wait_drawn(after=drawn)
    listed = api(polku, "/v1/analytics/journeys/trials/contacts", trait="plan:pro")
    found = [r.get_attribute("data-contact") for r in browser.all("#trait-results tbody tr")]
    assert found == [c["contact"] for c in listed["contacts"]]
    assert {contacts["bought"], contacts["refunded"]} <= set(found)
    assert contacts["looked"] not in found


async def test_the_demo_journeys_fill_up_live(tmp_path: Path, browser: Browser) -> None:
    """`make run`'s view: the example journeys with demo traffic, counted as it arrives (the
    page refreshes itself; no reload). Its screenshots are the README's."""
    demo = deploy("embedded", ROOT / "journeys", tmp_path, None, None,
                  POLKU_DEV_DEMO_CONTACTS_PER_S="20")
    demo.api.args = ("--demo",)
    demo.start()
    try:
        if not analytics_served(demo):
            pytest.skip("this build has no analytics API (/v1/analytics) to show")
        browser.driver.set_window_size(1280, 1250)
        browser.open(demo.api.url + "/#/journeys/saas-onboarding")
        drawn = browser.drawn()
        first = browser.find("table.stages-table").text
        browser.wait(lambda: browser.find("table.stages-table").text != first,
                     "the map to count new contacts", timeout_s=30)
        assert browser.drawn() == drawn  # refreshed in place
        browser.wait(lambda: browser.all("table.backward tbody tr"), "a move back",
                     timeout_s=60)
        snap(browser, "journey-map", docs=True)
        browser.open(demo.api.url + "/#/journeys/saas-onboarding/funnel?split=channel")
        browser.find("#funnel-chart canvas")
        snap(browser, "funnel", docs=True)
        browser.open(demo.api.url + "/#/journeys/saas-onboarding/time")
        browser.find("#time-chart canvas")
        snap(browser, "time-in-stage")
        assert browser.errors() == []
    finally:
        browser.driver.set_window_size(1280, 1000)
        demo.kill()
