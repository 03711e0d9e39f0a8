// The console's entry point: the header, the routes, sign-in and the language switch.
import { ApiError, SignInNeeded, setToken, token, tokenWorks, Unreachable } from "./api.js";
import { currentRoute, forgetJourneys } from "./app.js";
import { h, fill } from "./dom.js";
import { language, setLanguage, t } from "./i18n.js";
import * as contact from "./pages/contact.js";
import * as contacts from "./pages/contacts.js";
import * as journeyPage from "./pages/journey.js";
import * as journeysPage from "./pages/journeys.js";
import * as stage from "./pages/stage.js";

const main = document.getElementById("page");
let stopPage = null;
let rendering = 0;

/** The page for a route: [module, its arguments]. */
function pageFor({parts, query}) {
  const [first, id, third, fourth] = parts;
  if (first === "journeys" && id && third === "stages" && fourth) return [stage, {journey: id, stage: fourth, query}];
  if (first === "journeys" && id) return [journeyPage, {journey: id, view: third || "map", query}];
  if (first === "contacts" && id) return [contact, {contact: id, query}];
  if (first === "contacts") return [contacts, {query}];
  return [journeysPage, {query}];
}

async function show() {
  stopPage?.();
  stopPage = null;
  const mine = ++rendering;
  const [page, args] = pageFor(currentRoute());
  // The page draws into `root` once it has its data; charts need it in the document to
  // measure themselves, so it is there (saying "loading") from the start.
  const root = h("div", {class: "view", dataset: {page: page.NAME}},
                 h("p", {class: "loading"}, t("loading")));
  fill(main, root);
  try {
    const stop = await page.render(root, args, {failed});
    if (mine !== rendering) {
      stop?.(); // the user went elsewhere while this page loaded
      return;
    }
    stopPage = stop ?? null;
    document.body.dataset.ready = String(mine); // the browser tests wait for this
  } catch (exc) {
    if (mine === rendering) failed(exc);
  }
}

/** What a page (or a refresh of it) could not do. */
function failed(exc) {
  if (exc instanceof SignInNeeded) {
    stopPage?.();
    stopPage = null;
    fill(main, signIn());
  } else if (exc instanceof Unreachable) {
    fill(main, h("p", {class: "error"}, t("error.network")));
  } else {
    console.error(exc);
    const text = exc instanceof ApiError ? exc.message : String(exc);
    fill(main, h("p", {class: "error"}, t("error.generic", {message: text})));
  }
  document.body.dataset.ready = String(rendering);
}

function signIn() {
  const input = h("input", {type: "password", id: "token", name: "token", autocomplete: "off",
                            required: true});
  const problem = h("p", {class: "error", hidden: true}, t("signin.wrong"));
  const submit = async (event) => {
    event.preventDefault();
    if (await tokenWorks(input.value.trim())) {
      setToken(input.value.trim());
      forgetJourneys();
      header();
      show();
    } else {
      problem.hidden = false;
    }
  };
  return h("form", {class: "signin", id: "signin", on: {submit}},
    h("h1", {}, t("signin.title")),
    h("p", {}, t("signin.explain")),
    h("label", {for: "token"}, t("signin.token")), input,
    h("button", {type: "submit"}, t("signin.submit")),
    problem);
}

function header() {
  document.getElementById("nav-journeys").textContent = t("nav.journeys");
  document.getElementById("nav-contacts").textContent = t("nav.contacts");
  const switcher = document.getElementById("language");
  switcher.textContent = t("language.switch");
  switcher.title = t("language.switch.title");
  const signOut = document.getElementById("sign-out");
  signOut.textContent = t("signout");
  signOut.hidden = !token();
}

document.getElementById("language").addEventListener("click", () => {
  setLanguage(language() === "fi" ? "en" : "fi");
  header();
  show();
});

document.getElementById("sign-out").addEventListener("click", () => {
  setToken(null);
  forgetJourneys();
  header();
  show();
});

setLanguage(language());
header();
window.addEventListener("hashchange", show);
show();
