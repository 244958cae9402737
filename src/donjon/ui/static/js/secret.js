// One secret: its metadata, payload (revealed on request, hidden again after a while), lifecycle,
// user metadata, ACL, consumers, one-time sharing, new version and deletion.
import * as api from "./api.js";
import { dl, field, form, h, replace, select, table, when } from "./dom.js";
import { accessSections } from "./shared.js";
import { attempt, copyText, heading, leave, onLeave, section, showNotice } from "./ui.js";

function payloadPanel(path, secret, config, lifecycle) {
  const seconds = Math.round(config.reveal_seconds);
  const output = h("pre", { class: "payload", id: "payload", hidden: true, tabindex: "0", "aria-label": "Secret value" });
  const countdown = h("p", { class: "muted countdown", hidden: true, "aria-live": "polite" });
  const kind = h("p", { class: "muted", hidden: true });
  let hideTimer = null;
  let tickTimer = null;
  let shown = null; // the value while it is on screen, and only then

  const hide = () => {
    clearTimeout(hideTimer);
    clearInterval(tickTimer);
    shown = null;
    output.textContent = "";
    output.hidden = true;
    countdown.hidden = true;
    kind.hidden = true;
    reveal.textContent = "Reveal";
    reveal.setAttribute("aria-expanded", "false");
  };
  const fetchPayload = async () => api.payloadOf(await api.request("GET", `${path}/payload`, { accept: "*/*" }));
  const reveal = h(
    "button",
    {
      type: "button",
      "aria-controls": "payload",
      "aria-expanded": "false",
      onclick: async () => {
        if (shown !== null) return hide();
        await attempt("Secret payload retrieval", async () => {
          const payload = await fetchPayload();
          shown = payload.text;
          output.textContent = payload.text;
          output.hidden = false;
          kind.textContent = payload.binary ? `Binary (${payload.type}), shown as base64.` : "";
          kind.hidden = !payload.binary;
          reveal.textContent = "Hide";
          reveal.setAttribute("aria-expanded", "true");
          let left = seconds;
          countdown.textContent = `Hidden again in ${left} s.`;
          countdown.hidden = false;
          tickTimer = setInterval(() => {
            left -= 1;
            countdown.textContent = `Hidden again in ${Math.max(left, 0)} s.`;
          }, 1000);
          hideTimer = setTimeout(hide, config.reveal_seconds * 1000);
        });
      },
    },
    "Reveal",
  );
  const copy = h(
    "button",
    {
      type: "button",
      class: "secondary",
      onclick: async () => {
        const text = shown !== null ? shown : await attempt("Secret payload retrieval", async () => (await fetchPayload()).text);
        if (text !== undefined) await copyText(text, "The value");
      },
    },
    "Copy",
  );
  onLeave(hide);
  const limited = lifecycle && lifecycle.max_reads !== null && lifecycle.max_reads !== undefined;
  return h(
    "div",
    { class: "payload-panel" },
    limited ? h("p", { class: "warning" }, `Each reveal or copy spends one of its ${lifecycle.reads_left} reads left.`) : null,
    h("div", { class: "actions" }, reveal, copy),
    kind,
    output,
    countdown,
  );
}

function versionForm(path, reload) {
  const payload = h("textarea", { name: "payload", rows: "3", required: true, spellcheck: "false", autocomplete: "off" });
  const encoding = select("encoding", [["text", "Text (UTF-8)"], ["base64", "Binary, given as base64"]], "text");
  return form(
    { "aria-label": "New version" },
    async () => {
      const body =
        encoding.value === "base64"
          ? {
              payload: payload.value.trim(),
              payload_content_type: "application/octet-stream",
              payload_content_encoding: "base64",
            }
          : { payload: payload.value, payload_content_type: "text/plain" };
      await attempt("Secret version creation", async () => {
        const answer = await api.send("POST", `${path}/versions`, body);
        payload.value = "";
        showNotice(`Version ${answer.version} is now the current value.`);
        await reload();
      });
    },
    field("New value", payload, "The previous value stays readable for the grace period, then is deleted."),
    field("Value is", encoding),
    h("button", { type: "submit" }, "Store a new version"),
  );
}

function wrapForm(path) {
  const ttl = select("ttl", [["300", "5 minutes"], ["3600", "1 hour"], ["86400", "24 hours"]], "300");
  const result = h("div", { class: "wrap-result" });
  return form(
    { "aria-label": "Share once" },
    async () => {
      await attempt("Secret wrapping", async () => {
        const answer = await api.send("POST", `${path}/wrap`, { ttl: Number(ttl.value) });
        // The token goes in the fragment: browsers never send it to a server, so no log records it.
        const link = `${location.origin}/ui/unwrap#${answer.wrap_token}`;
        const input = h("input", { readonly: true, value: link, class: "wrap-link", "aria-label": "One-time link" });
        replace(
          result,
          field("One-time link", input, `Opens the value once, until ${when(answer.expires)}.`),
          h("button", { type: "button", class: "secondary", onclick: () => copyText(link, "The link") }, "Copy the link"),
        );
        input.focus();
        input.select();
      });
    },
    h("p", { class: "muted" }, "A link that shows the current value once to whoever opens it first, with no sign-in."),
    field("Valid for", ttl),
    h("button", { type: "submit" }, "Make a one-time link"),
    result,
  );
}

async function userMetadata(body, path) {
  const reload = () => userMetadata(body, path);
  const meta = (await api.get(`${path}/metadata`)).metadata || {};
  const key = h("input", { name: "key", required: true, autocomplete: "off" });
  const value = h("input", { name: "value", required: true, autocomplete: "off" });
  const rows = Object.entries(meta).map(([k, v]) => [
    k,
    v,
    h(
      "button",
      {
        type: "button",
        class: "link",
        "aria-label": `Remove ${k}`,
        onclick: () =>
          attempt("Secret metadata deletion", async () => {
            await api.send("DELETE", `${path}/metadata/${encodeURIComponent(k)}`);
            await reload();
          }),
      },
      "Remove",
    ),
  ]);
  replace(
    body,
    rows.length ? table(["Key", "Value", ""], rows) : h("p", { class: "empty" }, "No user metadata."),
    form(
      { class: "inline", "aria-label": "Add metadata" },
      async () => {
        await attempt("Secret metadata creation", async () => {
          await api.send("POST", `${path}/metadata`, { key: key.value.trim(), value: value.value });
          await reload();
        });
      },
      field("Key", key),
      field("Value", value),
      h("button", { type: "submit" }, "Add"),
    ),
  );
}

export async function secretView(main, { args, config }) {
  const [id] = args;
  const path = `/v1/secrets/${encodeURIComponent(id)}`;
  const secret = await api.get(path);
  let lifecycle = null;
  try {
    lifecycle = await api.get(`${path}/lifecycle`);
  } catch {
    lifecycle = null; // shown as its own section's error below
  }
  const reload = async () => {
    leave(); // the revealed value and its timers go with the old page
    await secretView(main, { args, config });
  };
  replace(
    main,
    heading(secret.name || "(unnamed secret)"),
    h("p", { class: "muted mono" }, id),
    dl([
      ["Type", secret.secret_type],
      ["Content type", secret.content_types ? secret.content_types.default : "no value yet"],
      ["Algorithm", secret.algorithm],
      ["Bit length", secret.bit_length],
      ["Mode", secret.mode],
      ["Created", when(secret.created)],
      ["Updated", when(secret.updated)],
      ["Expires", secret.expiration ? when(secret.expiration) : "never"],
      ["Creator", secret.creator_id],
    ]),
  );
  await Promise.all([
    section(main, "Value", async (body) => {
      replace(body, secret.content_types ? payloadPanel(path, secret, config, lifecycle) : h("p", {}, "No value stored yet."));
    }),
    section(main, "Lifecycle", async (body) => {
      const life = lifecycle || (await api.get(`${path}/lifecycle`));
      replace(
        body,
        dl([
          ["Reads left", life.max_reads === null ? "unlimited" : `${life.reads_left} of ${life.max_reads}`],
          ["Current version", life.current_version],
        ]),
        table(
          ["Version", "Created", "Readable until"],
          life.versions.map((v) => [String(v.version), when(v.created), v.readable_until ? when(v.readable_until) : "current"]),
          "Versions",
        ),
        life.max_reads === null ? h("details", {}, h("summary", {}, "New version"), versionForm(path, reload)) : null,
      );
    }),
    section(main, "Share once", async (body) => replace(body, wrapForm(path))),
    section(main, "User metadata", async (body) => userMetadata(body, path)),
    ...accessSections(main, "secret", path, "#/secrets", reload),
  ]);
}
