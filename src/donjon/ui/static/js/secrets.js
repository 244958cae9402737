// The secrets list (the API's filters and paging) and the creation form (a typed value, or generated
// through an order).
import * as api from "./api.js";
import { field, form, h, idOf, pager, replace, select, table, when } from "./dom.js";
import { orderForm } from "./orders.js";
import { attempt, heading, navigate } from "./ui.js";

export const SECRET_TYPES = ["opaque", "passphrase", "symmetric", "public", "private", "certificate"];
const PAGE_SIZES = ["10", "25", "50", "100"];

// Filters live in the hash (#/secrets?name=...): bookmarkable, and never sent to the server as a URL.
function listQuery(params) {
  const q = { limit: params.get("limit") || "10", offset: params.get("offset") || "0" };
  const name = params.get("name");
  if (name) q.name = `%${name}%`; // the API's name filter is a LIKE pattern: a substring search
  if (params.get("type")) q.secret_type = params.get("type");
  const after = params.get("after");
  const before = params.get("before");
  const bounds = [];
  if (after) bounds.push(`gte:${after}T00:00:00`);
  if (before) bounds.push(`lte:${before}T23:59:59`);
  if (bounds.length) q.created = bounds.join(",");
  if (params.get("shared") === "1") q.acl_only = "true";
  return q;
}

function filterForm(params) {
  const name = h("input", { type: "search", name: "name", value: params.get("name") || "", autocomplete: "off" });
  const type = select("type", [["", "Any type"], ...SECRET_TYPES.map((t) => [t, t])], params.get("type") || "");
  const after = h("input", { type: "date", name: "after", value: params.get("after") || "" });
  const before = h("input", { type: "date", name: "before", value: params.get("before") || "" });
  const shared = h("input", { type: "checkbox", name: "shared", checked: params.get("shared") === "1" });
  const limit = select("limit", PAGE_SIZES.map((n) => [n, `${n} a page`]), params.get("limit") || "10");
  return form(
    { class: "filters", role: "search", "aria-label": "Search secrets" },
    () => {
      const next = new URLSearchParams();
      if (name.value.trim()) next.set("name", name.value.trim());
      if (type.value) next.set("type", type.value);
      if (after.value) next.set("after", after.value);
      if (before.value) next.set("before", before.value);
      if (shared.checked) next.set("shared", "1");
      next.set("limit", limit.value);
      navigate(`#/secrets?${next}`);
    },
    field("Name contains", name),
    field("Type", type),
    field("Created from", after),
    field("Created until", before),
    field("Page size", limit),
    h("div", { class: "field check" }, h("label", {}, shared, " Shared with me (ACL)")),
    h("button", { type: "submit" }, "Search"),
  );
}

export async function secretsView(main, { params }) {
  const body = await api.get(`/v1/secrets${api.query(listQuery(params))}`);
  const rows = body.secrets.map((s) => [
    h("a", { href: `#/secrets/${idOf(s.secret_ref)}` }, s.name || "(unnamed)"),
    s.secret_type,
    [s.algorithm, s.bit_length].filter(Boolean).join(" ") || "—",
    when(s.created),
    when(s.expiration),
  ]);
  replace(
    main,
    heading(params.get("shared") === "1" ? "Secrets shared with me" : "Secrets"),
    h("p", {}, h("a", { href: "#/secrets/new", class: "button" }, "New secret")),
    filterForm(params),
    rows.length
      ? table(["Name", "Type", "Key", "Created", "Expires"], rows, `${body.total} secrets`)
      : h("p", { class: "empty" }, "No secret matches."),
    pager("#/secrets", params, body.total, body.secrets.length),
  );
}

function typedForm() {
  const name = h("input", { name: "name", autocomplete: "off" });
  const type = select("secret_type", SECRET_TYPES.map((t) => [t, t]), "opaque");
  const payload = h("textarea", { name: "payload", rows: "4", required: true, spellcheck: "false", autocomplete: "off" });
  const encoding = select("encoding", [["text", "Text (UTF-8)"], ["base64", "Binary, given as base64"]], "text");
  const expiration = h("input", { type: "datetime-local", name: "expiration" });
  const algorithm = h("input", { name: "algorithm", autocomplete: "off" });
  const bits = h("input", { type: "number", name: "bit_length", min: "1", inputmode: "numeric" });
  const mode = h("input", { name: "mode", autocomplete: "off" });
  const maxReads = h("input", { type: "number", name: "max_reads", min: "1", max: "1000000", inputmode: "numeric" });
  return form(
    { class: "card", "aria-label": "Store a value" },
    async () => {
      const body = { secret_type: type.value, payload: payload.value };
      if (name.value.trim()) body.name = name.value.trim();
      if (encoding.value === "base64") {
        body.payload = payload.value.trim();
        body.payload_content_type = "application/octet-stream";
        body.payload_content_encoding = "base64";
      } else body.payload_content_type = "text/plain";
      if (expiration.value) body.expiration = new Date(expiration.value).toISOString();
      if (algorithm.value.trim()) body.algorithm = algorithm.value.trim();
      if (bits.value) body.bit_length = Number(bits.value);
      if (mode.value.trim()) body.mode = mode.value.trim();
      if (maxReads.value) body.max_reads = Number(maxReads.value);
      await attempt("Secret creation", async () => {
        const created = await api.send("POST", "/v1/secrets", body);
        payload.value = "";
        navigate(`#/secrets/${idOf(created.secret_ref)}`);
      });
    },
    h("h2", {}, "Store a value"),
    field("Name", name),
    field("Type", type),
    field("Value", payload),
    field("Value is", encoding),
    field("Expires", expiration, "Optional; your local time. The secret is gone after it."),
    h(
      "details",
      {},
      h("summary", {}, "Key attributes and read limit"),
      field("Algorithm", algorithm),
      field("Bit length", bits),
      field("Mode", mode),
      field("Readable at most", maxReads, "Times the value may be read; it is deleted after the last read."),
    ),
    h("button", { type: "submit" }, "Store the secret"),
  );
}

export async function newSecretView(main) {
  replace(
    main,
    heading("New secret"),
    h("div", { class: "columns" }, typedForm(), orderForm({ title: "Or generate one", kinds: ["password", "key", "asymmetric"] })),
  );
}
