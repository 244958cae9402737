// The console's entry: configuration, sign-in, navigation between views (hash routes, so nothing about
// the session ever reaches the server in a URL), and the header.
import * as api from "./api.js";
import { auditView } from "./audit.js";
import { containersView, containerView, newContainerView } from "./containers.js";
import { h, replace } from "./dom.js";
import { ordersView, orderView } from "./orders.js";
import { quotasView } from "./quotas.js";
import { newSecretView, secretsView } from "./secrets.js";
import { secretView } from "./secret.js";
import { signInView } from "./signin.js";
import { clearAlerts, currentRoute, leave, navigate, showError } from "./ui.js";

const ROUTES = [
  [/^\/secrets$/, secretsView],
  [/^\/secrets\/new$/, newSecretView],
  [/^\/secrets\/([^/]+)$/, secretView],
  [/^\/containers$/, containersView],
  [/^\/containers\/new$/, newContainerView],
  [/^\/containers\/([^/]+)$/, containerView],
  [/^\/orders$/, ordersView],
  [/^\/orders\/([^/]+)$/, orderView],
  [/^\/quotas$/, quotasView],
  [/^\/audit$/, auditView],
];
const NAV = [
  ["#/secrets", "Secrets"],
  ["#/containers", "Containers"],
  ["#/orders", "Orders"],
  ["#/quotas", "Quotas"],
  ["#/audit", "Audit"],
];

let config = null;
let rendering = 0;

function header() {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  const identity = api.identity();
  nav.hidden = !identity;
  if (!identity) {
    replace(nav);
    replace(who);
    return;
  }
  const { path } = currentRoute();
  replace(
    nav,
    h(
      "ul",
      {},
      NAV.map(([href, text]) =>
        h("li", {}, h("a", { href, "aria-current": path.startsWith(href.slice(1)) ? "page" : false }, text)),
      ),
    ),
  );
  const user = identity.user_name || identity.user_id || "anonymous";
  const project = identity.project_name || identity.project_id || "no project";
  replace(
    who,
    h("span", { class: "identity" }, `${user} · ${project} · ${(identity.roles || []).join(", ") || "no role"}`),
    h("button", { type: "button", class: "secondary", onclick: () => signOutButton() }, "Sign out"),
  );
}

// A Keystone token the console obtained with a password is revoked in Keystone; a pasted token is the
// person's own (their CLI may use it) and is only forgotten here.
async function signOutButton() {
  const identity = api.identity();
  if (identity && identity.issued) {
    try {
      await api.request("DELETE", "/ui/api/keystone/tokens");
    } catch (error) {
      signOut();
      showError(error, "Revoking the Keystone token");
      return;
    }
  }
  signOut();
}

// The sign-out button also forgets where the person was: the next one to sign in starts at the list.
// A session that ended (401) keeps the route, to come back to it.
function signOut(message, keepRoute = false) {
  leave();
  api.signOut();
  clearAlerts();
  if (!keepRoute) history.replaceState(null, "", location.pathname);
  render(message);
}

async function render(message) {
  leave();
  const main = document.getElementById("main");
  const ticket = ++rendering;
  header();
  if (!api.signedIn()) {
    signInView(main, config, (headers, who) => {
      api.signIn(headers, who);
      clearAlerts();
      if (!location.hash.startsWith("#/")) navigate("#/secrets");
      else render();
    }, message);
    return;
  }
  const { path, params } = currentRoute();
  for (const [pattern, view] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    // Each view draws in its own element: a view still loading when the person moves on draws into an
    // element no longer on the page, never over the next view.
    const page = h("div", { class: "view" }, h("p", { class: "muted" }, "Loading…"));
    replace(main, page);
    const stale = () => ticket !== rendering;
    try {
      await view(page, { args: match.slice(1).map(decodeURIComponent), params, config, stale });
    } catch (error) {
      if (stale()) return;
      if (error instanceof api.ApiError && error.status === 401) {
        signOut("Your session has ended: sign in again.", true);
        return;
      }
      showError(error);
      replace(page, h("h1", { tabindex: "-1" }, "This page could not be shown"), h("p", { class: "inline-error" }, String(error)));
    }
    if (ticket === rendering) {
      const title = main.querySelector("h1");
      if (title) title.focus();
    }
    return;
  }
  replace(main, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/secrets" }, "Back to the secrets")));
}

async function start() {
  try {
    const response = await fetch("/ui/api/config", { cache: "no-store", credentials: "omit" });
    config = await response.json();
  } catch (error) {
    showError(error, "Loading the console");
    return;
  }
  window.addEventListener("hashchange", () => {
    if (!location.hash.startsWith("#/")) return; // the skip link (#main), not a route
    clearAlerts();
    render();
  });
  render();
}

start();
