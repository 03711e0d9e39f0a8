// Finding a contact: by any of its ids (the read API answers for every linked id), or by a
// trait within a journey (the analytics contacts list).
import { analytics, href, journeys } from "../app.js";
import { fill, h } from "../dom.js";
import { label, t } from "../i18n.js";
import { showContacts } from "./stage.js";

export const NAME = "contacts";

export async function render(root, {query}) {
  const all = await journeys();
  const idInput = h("input", {type: "search", name: "id", id: "contact-id", required: true,
                              autocomplete: "off"});
  const byId = (event) => {
    event.preventDefault();
    location.hash = href(["contacts", idInput.value.trim()]);
  };
  const journeyId = query.get("journey") || all[0]?.id || "";
  const journeySelect = h("select", {name: "journey", id: "trait-journey"},
    all.map((j) => h("option", {value: j.id, selected: j.id === journeyId}, label(j.labels, j.id))));
  const nameInput = h("input", {type: "text", name: "name", id: "trait-name", required: true,
                                value: query.get("name") || ""});
  const valueInput = h("input", {type: "text", name: "value", id: "trait-value", required: true,
                                 value: query.get("value") || ""});
  const byTrait = (event) => {
    event.preventDefault();
    location.hash = href(["contacts"], {journey: journeySelect.value, name: nameInput.value.trim(),
                                        value: valueInput.value.trim()});
  };
  const results = h("div", {id: "trait-results"});
  fill(root,
    h("h1", {}, t("contacts.title")),
    h("form", {class: "card", id: "find-by-id", on: {submit: byId}},
      h("h2", {}, t("contacts.byId")),
      h("p", {class: "muted"}, t("contacts.byId.explain")),
      h("label", {}, t("contacts.id"), " ", idInput), " ",
      h("button", {type: "submit"}, t("contacts.find"))),
    h("form", {class: "card", id: "find-by-trait", on: {submit: byTrait}},
      h("h2", {}, t("contacts.byTrait")),
      h("label", {}, t("contacts.journey"), " ", journeySelect), " ",
      h("label", {}, t("contacts.traitName"), " ", nameInput), " ",
      h("label", {}, t("contacts.traitValue"), " ", valueInput), " ",
      h("button", {type: "submit"}, t("contacts.find"))),
    results);
  if (query.get("name") && query.get("value") && journeyId) {
    const params = {trait: `${query.get("name")}:${query.get("value")}`, limit: 50};
    const found = await analytics(journeyId, "contacts", params);
    if (found === null) fill(results, h("p", {class: "notice", id: "no-analytics"}, t("error.analytics")));
    else if (!found.contacts.length) fill(results, h("p", {class: "muted"}, t("contacts.none")));
    else showContacts(results, found, (cursor) => analytics(journeyId, "contacts", {...params, cursor}));
  }
  return null;
}
