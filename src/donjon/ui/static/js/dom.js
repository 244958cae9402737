// Elements are built from data, never from HTML strings: the console's Content-Security-Policy requires
// Trusted Types and allows no policy, so innerHTML and its kin throw. Text always goes in as text.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

// A labelled form field; `input` is the control (input, select, textarea) and gets an id for the label.
let fieldCount = 0;
export function field(label, input, hint) {
  const id = input.id || `f${++fieldCount}`;
  input.id = id;
  const hintEl = hint ? h("small", { id: `${id}-hint`, class: "hint" }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl);
}

// A form whose submit stays on the page: the browser's navigation is cancelled, then `onSubmit(event)` runs.
export function form(attrs, onSubmit, ...children) {
  const submit = (event) => {
    event.preventDefault();
    return onSubmit(event);
  };
  return h("form", { ...attrs, onsubmit: submit }, ...children);
}

export function select(name, options, selected) {
  return h(
    "select",
    { name },
    options.map(([value, text]) => h("option", { value, selected: value === selected }, text)),
  );
}

// API times are naive UTC ("2024-05-01T12:00:00.123456"): shown to the second, marked UTC.
export function when(iso) {
  if (!iso) return "—";
  return `${String(iso).replace("T", " ").slice(0, 19)} UTC`;
}

// The id at the end of a ref (refs carry the server's host_href, which may not be this page's origin).
export function idOf(ref) {
  return String(ref || "").replace(/\/+$/, "").split("/").pop();
}

export function table(headers, rows, caption) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", {}, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))),
    ),
  );
}

export function dl(pairs) {
  return h(
    "dl",
    { class: "props" },
    pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v === null || v === undefined || v === "" ? "—" : v)]),
  );
}

// Previous/next links over an API list's offset and limit, kept in the hash route.
export function pager(base, params, total, count) {
  const offset = Number(params.get("offset") || 0);
  const limit = Number(params.get("limit") || 10);
  const at = (o) => {
    const next = new URLSearchParams(params);
    next.set("offset", String(Math.max(0, o)));
    return `${base}?${next}`;
  };
  const first = total === 0 ? 0 : offset + 1;
  return h(
    "nav",
    { class: "pager", "aria-label": "Pages" },
    h("span", { class: "range" }, `${first}–${offset + count} of ${total}`),
    offset > 0 ? h("a", { href: at(offset - limit), rel: "prev" }, "Previous page") : null,
    offset + count < total ? h("a", { href: at(offset + limit), rel: "next" }, "Next page") : null,
  );
}
