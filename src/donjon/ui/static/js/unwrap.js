// The one-time link's page: /ui/unwrap#<wrap token>. The token is in the fragment, which browsers never
// send to a server; it is taken out of the address bar at once and sent only in the X-Wrap-Token header
// of the single unwrap request, made when the person asks for it (a link preview must not spend it).
import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { attempt, copyText } from "./ui.js";

function start() {
  const main = document.getElementById("main");
  let token = decodeURIComponent(location.hash.slice(1));
  history.replaceState(null, "", location.pathname);
  if (!token) {
    replace(main, h("h1", { tabindex: "-1" }, "No secret here"), h("p", {}, "This link carries no token: it may have been cut short."));
    return;
  }
  const output = h("pre", { class: "payload", hidden: true, tabindex: "0", "aria-label": "Secret value" });
  const after = h("div", { class: "actions" });
  const open = h(
    "button",
    {
      type: "button",
      onclick: async () => {
        open.disabled = true;
        const used = token;
        token = "";
        await attempt("Opening the shared secret", async () => {
          const response = await api.request("POST", "/v1/unwrap", { accept: "*/*", extraHeaders: { "X-Wrap-Token": used }, anonymous: true });
          const payload = await api.payloadOf(response);
          output.textContent = payload.text;
          output.hidden = false;
          replace(
            after,
            h("button", { type: "button", class: "secondary", onclick: () => copyText(payload.text, "The value") }, "Copy"),
            h("p", { class: "muted" }, payload.binary ? "Binary, shown as base64. " : "", "This link will not open again: keep the value somewhere safe now."),
          );
          output.focus();
        });
      },
    },
    "Open the secret",
  );
  replace(
    main,
    h("h1", { tabindex: "-1" }, "A secret shared with you"),
    h("p", {}, "This link opens once. Whoever opens it first sees the value; after that it is gone."),
    open,
    output,
    after,
  );
  open.focus();
}

start();
