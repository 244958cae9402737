// What every view shares: the alert region, clean-up on leaving a view, dialogs, the clipboard.
import { h, replace } from "./dom.js";

const leaving = [];

// `fn` runs when the person leaves the current view (navigation, sign-out): timers stop, payloads go.
export function onLeave(fn) {
  leaving.push(fn);
}

export function leave() {
  while (leaving.length) {
    try {
      leaving.pop()();
    } catch {
      // a clean-up that fails must not keep the others from running
    }
  }
}

export function clearAlerts() {
  replace(document.getElementById("alerts"));
}

// An API error (or any error) where the person sees it: the alert region, read out by screen readers.
export function showError(error, context) {
  const text = error && error.status ? String(error) : `Error: ${error && error.message ? error.message : error}`;
  const box = h(
    "div",
    { class: "alert error" },
    h("strong", {}, context ? `${context}: ` : ""),
    h("span", { class: "alert-text" }, text),
    h("button", { type: "button", class: "link", onclick: () => box.remove() }, "Dismiss"),
  );
  document.getElementById("alerts").append(box);
}

export function showNotice(text) {
  const box = h(
    "div",
    { class: "alert notice", role: "status" },
    h("span", { class: "alert-text" }, text),
    h("button", { type: "button", class: "link", onclick: () => box.remove() }, "Dismiss"),
  );
  document.getElementById("alerts").append(box);
}

// Runs `fn`, showing what went wrong instead of failing silently; returns its result or undefined.
export async function attempt(context, fn) {
  try {
    return await fn();
  } catch (error) {
    showError(error, context);
    return undefined;
  }
}

// A part of a page that loads on its own: its error is shown in place (a reader may see a secret but
// not its ACL), and the rest of the page still works. It is placed at once; `fn` fills it when it can.
export function section(container, title, fn) {
  const body = h("div", { class: "section-body" }, h("p", { class: "muted" }, "Loading…"));
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  container.append(h("section", { "aria-labelledby": id }, h("h2", { id }, title), body));
  return (async () => {
    try {
      await fn(body);
    } catch (error) {
      replace(body, h("p", { class: "inline-error" }, String(error)));
    }
  })();
}

export function heading(text) {
  return h("h1", { tabindex: "-1" }, text);
}

// A modal confirmation (native <dialog>: focus is trapped, Escape cancels). Resolves true or false.
export function confirmDialog(title, content, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { "aria-labelledby": "confirm-title", class: "confirm" },
      h("h2", { id: "confirm-title" }, title),
      content,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button", { type: "button", class: "danger", onclick: () => dialog.close("confirm") }, confirmLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "confirm");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export async function copyText(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    showNotice(`${what} copied to the clipboard.`);
  } catch (error) {
    showError(error, "Copy to the clipboard");
  }
}

export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

// The hash route: "#/secrets/abc?name=x" -> {path: "/secrets/abc", params: URLSearchParams}.
export function currentRoute() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(1) : "/secrets";
  const [path, q] = raw.split("?", 2);
  return { path: path.replace(/\/+$/, "") || "/secrets", params: new URLSearchParams(q || "") };
}
