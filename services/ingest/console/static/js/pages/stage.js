// The contacts in one stage of a journey (the analytics contacts list, a page at a time),
// filtered by when they entered and by a trait; each opens the contact's page.
import { analytics, href, journey as findJourney } from "../app.js";
import { fill, h } from "../dom.js";
import { time } from "../format.js";
import { label, t } from "../i18n.js";

export const NAME = "stage";

const PAGE = 50;

export async function render(root, {journey: id, stage, query}) {
  const journey = await findJourney(id);
  if (!journey) {
    fill(root, h("p", {class: "error"}, t("journey.unknown", {id})));
    return null;
  }
  const stageLabel = label(journey.stages.find((s) => s.id === stage)?.labels, stage);
  const since = query.get("entered_since") || "";
  const trait = query.get("trait") || "";
  const params = {stage, entered_since: since ? `${since}T00:00:00Z` : "", trait, limit: PAGE};
  const first = await analytics(id, "contacts", params);
  const list = h("div", {id: "stage-contacts"});
  const sinceInput = h("input", {type: "date", name: "entered_since", value: since});
  const traitInput = h("input", {type: "text", name: "trait", value: trait, placeholder: "plan:pro"});
  const filter = (event) => {
    event.preventDefault();
    location.hash = href(["journeys", id, "stages", stage],
                         {entered_since: sinceInput.value, trait: traitInput.value.trim()});
  };
  fill(root,
    h("p", {class: "crumbs"}, h("a", {href: href(["journeys", id])}, label(journey.labels, id))),
    h("h1", {}, t("stage.title", {stage: stageLabel, journey: label(journey.labels, id)})),
    h("form", {class: "options", id: "stage-filter", on: {submit: filter}},
      h("label", {}, t("stage.enteredSince"), " ", sinceInput),
      h("label", {}, t("stage.trait"), " ", traitInput),
      h("button", {type: "submit"}, t("stage.filter"))),
    h("h2", {}, t("stage.contacts")),
    list);
  if (first === null) {
    fill(list, h("p", {class: "notice", id: "no-analytics"}, t("error.analytics")));
    return null;
  }
  showContacts(list, first, (cursor) => analytics(id, "contacts", {...params, cursor}));
  return null;
}

/** A table of contacts from the contacts list, with "More" while there is a next page. */
export function showContacts(list, answer, next) {
  const rows = h("tbody");
  const more = h("button", {type: "button", class: "plain", id: "more"}, t("stage.more"));
  const add = (page) => {
    for (const c of page.contacts) rows.append(contactRow(c));
    more.hidden = !page.next_cursor;
    more.onclick = async () => add(await next(page.next_cursor));
  };
  if (!answer.contacts.length) {
    fill(list, h("p", {class: "muted"}, t("stage.none")));
    return;
  }
  fill(list, h("table", {class: "contacts-table"},
    h("thead", {}, h("tr", {}, [t("contacts.id"), t("contact.stage"), t("contact.entered"),
                                t("contact.firstTouch"), t("contact.traits")].map((x) => h("th", {}, x)))),
    rows), more);
  add(answer);
}

function contactRow(c) {
  const traits = Object.entries(c.traits || {}).slice(0, 4)
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  return h("tr", {dataset: {contact: c.contact}},
    h("td", {}, h("a", {href: href(["contacts", c.contact]), class: "contact-link"}, c.contact)),
    h("td", {}, c.stage ?? t("none")),
    h("td", {}, time(c.entered_at)),
    h("td", {}, c.first_touch ? t("touch", {channel: c.first_touch.channel, at: time(c.first_touch.at)}) : t("none")),
    h("td", {class: "traits"}, traits || t("none")));
}

