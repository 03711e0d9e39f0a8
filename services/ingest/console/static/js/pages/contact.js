// One contact, found by any of its ids: its stage in every journey, its touches and traits,
// and the timeline of its transitions with their cause, rule and reason ("why is it here").
import { ApiError, get } from "../api.js";
import { href, journeys, live } from "../app.js";
import { fill, h, table } from "../dom.js";
import { time } from "../format.js";
import { label, t } from "../i18n.js";

export const NAME = "contact";

export async function render(root, {contact: id}, {failed}) {
  const all = await journeys();
  const read = async () => {
    try {
      return await get(`/v1/contacts/${encodeURIComponent(id)}`);
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 404 && !exc.unrouted) return null;
      throw exc;
    }
  };
  let last = null;
  const show = (person) => {
    const text = JSON.stringify(person);
    if (text === last) return;
    last = text;
    if (person === null) {
      fill(root, h("h1", {}, t("contact.title", {id})),
           h("p", {class: "notice", id: "unknown-contact"}, t("contact.unknown", {id})));
      return;
    }
    fill(root, page(person, all));
  };
  show(await read());
  return live(async () => show(await read()), failed);
}

function page(person, all) {
  const others = person.ids.filter((id) => id !== person.contact);
  return [
    h("h1", {id: "contact-title", dataset: {contact: person.contact}},
      t("contact.title", {id: person.contact})),
    others.length ? h("p", {class: "muted", id: "contact-ids"}, t("contact.ids"), ": ",
                      others.join(", ")) : null,
    person.conflicts.length ? h("details", {class: "conflicts"},
      h("summary", {}, t("contact.conflicts"), ` (${person.conflicts.length})`),
      h("ul", {}, person.conflicts.map((c) => h("li", {},
        `${c.reason}: ${c.contact} ↔ ${c.other}, ${time(c.at)}`)))) : null,
    person.journeys.map((view) => journeyCard(view, all.find((j) => j.id === view.journey))),
  ];
}

function journeyCard(view, journey) {
  const stageName = (stage) => label(journey?.stages.find((s) => s.id === stage)?.labels, stage);
  const stageLink = (stage) => (stage
    ? h("a", {href: href(["journeys", view.journey, "stages", stage]), class: "stage-link",
              dataset: {stage}}, stageName(stage))
    : t("contact.entry"));
  const current = view.stage?.id ?? null;
  const why = [...view.history].reverse().find((tr) => tr.to === current);
  const traits = Object.entries(view.traits || {});
  return h("section", {class: "card contact-journey", dataset: {journey: view.journey}},
    h("h2", {}, h("a", {href: href(["journeys", view.journey])}, label(journey?.labels, view.journey))),
    h("dl", {class: "facts"},
      h("dt", {}, t("contact.stage")),
      h("dd", {class: "current-stage", dataset: {stage: current ?? ""}},
        current ? stageLink(current) : t("contact.noStage")),
      h("dt", {}, t("contact.entered")), h("dd", {title: view.entered_at ?? ""}, time(view.entered_at)),
      h("dt", {}, t("contact.firstTouch")), h("dd", {}, touch(view.first_touch)),
      h("dt", {}, t("contact.lastTouch")), h("dd", {}, touch(view.last_touch)),
      h("dt", {}, t("contact.lastEvent")), h("dd", {}, time(view.last_event_at))),
    why ? h("div", {class: "why"},
      h("h3", {}, t("contact.why")),
      h("p", {}, why.rule
        ? t("contact.whyText", {stage: stageName(why.to), at: time(why.at), rule: why.rule})
        : t("contact.whyEntry", {stage: stageName(why.to), at: time(why.at)})),
      why.reason ? h("p", {class: "reason"}, why.reason) : null,
      h("p", {class: "muted"}, t("contact.cause"), ": ", cause(why))) : null,
    h("h3", {}, t("contact.traits")),
    traits.length
      ? h("table", {class: "traits"}, h("tbody", {}, traits.map(([k, v]) =>
          h("tr", {}, h("th", {}, k), h("td", {}, typeof v === "object" ? JSON.stringify(v) : String(v))))))
      : h("p", {class: "muted"}, t("contact.noTraits")),
    h("h3", {}, t("contact.timeline")),
    table([
      [t("contact.at"), (tr) => h("span", {title: tr.at}, time(tr.at))],
      [t("contact.move"), (tr) => [tr.from ? stageLink(tr.from) : t("contact.entry"), " → ", stageLink(tr.to)]],
      [t("contact.rule"), (tr) => tr.rule ?? t("none")],
      [t("contact.reason"), (tr) => tr.reason || t("none")],
      [t("contact.cause"), (tr) => cause(tr)],
    ], view.history, {class: "timeline",
                      rowData: (tr) => ({transition: tr.transition_id, from: tr.from ?? "", to: tr.to,
                                         rule: tr.rule ?? ""})}));
}

function touch(value) {
  return value ? t("touch", {channel: value.channel, at: time(value.at)}) : t("none");
}

function cause(transition) {
  const by = transition.caused_by || {};
  if (by.kind === "timer") return t("contact.cause.timer", {rule: by.rule});
  if (by.kind === "merge") return t("contact.cause.merge", {id: by.merged});
  return t("contact.cause.event", {id: by.message_id ?? transition.cause});
}
