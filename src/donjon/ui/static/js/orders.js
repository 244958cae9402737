// Orders: generate a password, a symmetric key or a key pair, and follow the order until ACTIVE or ERROR.
import * as api from "./api.js";
import { dl, field, form, h, idOf, pager, replace, select, table, when } from "./dom.js";
import { attempt, confirmDialog, heading, navigate, onLeave } from "./ui.js";

const KINDS = {
  password: "A password",
  key: "A symmetric key (AES)",
  asymmetric: "A key pair (RSA or EC)",
};
const CLASSES = ["lower", "upper", "digits", "symbols"];

function metaFor(kind, inputs) {
  const meta = {};
  if (inputs.name.value.trim()) meta.name = inputs.name.value.trim();
  if (kind === "password") {
    meta.length = Number(inputs.length.value);
    meta.character_classes = CLASSES.filter((c) => inputs.classes[c].checked);
  } else if (kind === "key") {
    Object.assign(meta, { algorithm: "aes", bit_length: Number(inputs.aes.value), mode: "cbc" });
    meta.payload_content_type = "application/octet-stream";
  } else {
    const [algorithm, bits] = inputs.pair.value.split("-");
    Object.assign(meta, { algorithm, bit_length: Number(bits), payload_content_type: "application/octet-stream" });
  }
  return meta;
}

export function orderForm({ title, kinds }) {
  const kind = select("type", kinds.map((k) => [k, KINDS[k]]), kinds[0]);
  const inputs = {
    name: h("input", { name: "name", autocomplete: "off" }),
    length: h("input", { type: "number", name: "length", min: "8", max: "1024", value: "32", inputmode: "numeric" }),
    classes: Object.fromEntries(CLASSES.map((c) => [c, h("input", { type: "checkbox", name: c, checked: true })])),
    aes: select("bit_length", [["256", "256 bits"], ["192", "192 bits"], ["128", "128 bits"]], "256"),
    pair: select(
      "pair",
      [["rsa-2048", "RSA 2048"], ["rsa-3072", "RSA 3072"], ["rsa-4096", "RSA 4096"], ["ec-256", "EC P-256"], ["ec-384", "EC P-384"]],
      "rsa-2048",
    ),
  };
  const groups = {
    password: h(
      "div",
      {},
      field("Length", inputs.length),
      h(
        "fieldset",
        {},
        h("legend", {}, "Characters"),
        CLASSES.map((c) => h("label", { class: "check" }, inputs.classes[c], ` ${c}`)),
      ),
    ),
    key: field("Size", inputs.aes),
    asymmetric: field("Algorithm", inputs.pair),
  };
  const show = () => {
    for (const [k, el] of Object.entries(groups)) el.hidden = k !== kind.value;
  };
  kind.addEventListener("change", show);
  show();
  return form(
    { class: "card", "aria-label": title },
    async () => {
      await attempt("Order creation", async () => {
        const created = await api.send("POST", "/v1/orders", { type: kind.value, meta: metaFor(kind.value, inputs) });
        navigate(`#/orders/${idOf(created.order_ref)}`);
      });
    },
    h("h2", {}, title),
    field("Generate", kind),
    field("Name", inputs.name),
    kinds.map((k) => groups[k]),
    h("button", { type: "submit" }, "Generate"),
  );
}

export async function ordersView(main, { params }) {
  const type = params.get("type") || "";
  const q = { limit: params.get("limit") || "10", offset: params.get("offset") || "0", type };
  const body = await api.get(`/v1/orders${api.query(q)}`);
  const filter = select("type", [["", "Keys and key pairs"], ["password", "Passwords"]], type);
  filter.addEventListener("change", () => navigate(`#/orders${filter.value ? `?type=${filter.value}` : ""}`));
  replace(
    main,
    heading("Orders"),
    h("div", { class: "filters" }, field("Show", filter, "Password orders are listed on their own, as the API does.")),
    body.orders.length
      ? table(
          ["Order", "Type", "Status", "Name", "Created"],
          body.orders.map((o) => [
            h("a", { href: `#/orders/${idOf(o.order_ref)}` }, idOf(o.order_ref).slice(0, 8)),
            o.type,
            h("span", { class: `status ${o.status.toLowerCase()}` }, o.status),
            (o.meta && o.meta.name) || "—",
            when(o.created),
          ]),
          `${body.total} orders`,
        )
      : h("p", { class: "empty" }, "No order."),
    pager("#/orders", params, body.total, body.orders.length),
    orderForm({ title: "New order", kinds: ["key", "asymmetric", "password"] }),
  );
}

function result(order) {
  if (order.secret_ref) return h("a", { href: `#/secrets/${idOf(order.secret_ref)}` }, "Open the generated secret");
  if (order.container_ref)
    return h("a", { href: `#/containers/${idOf(order.container_ref)}` }, "Open the generated key pair (container)");
  return null;
}

export async function orderView(main, { args, stale }) {
  const [id] = args;
  const status = h("p", { class: "order-status", role: "status" });
  const details = h("div");
  const progress = h("progress", { "aria-label": "Order progress" });
  let timer = null;
  onLeave(() => clearTimeout(timer));

  const draw = (order) => {
    const done = order.status === "ACTIVE" || order.status === "ERROR";
    progress.hidden = done;
    replace(status, "Status: ", h("strong", { class: `status ${order.status.toLowerCase()}` }, order.status));
    replace(
      details,
      dl([
        ["Type", order.type],
        ["Name", order.meta && order.meta.name],
        ["Created", when(order.created)],
        ["Updated", when(order.updated)],
        order.error_status_code ? ["Error", `${order.error_status_code}: ${order.error_reason}`] : null,
      ]),
      done ? h("p", {}, result(order)) : h("p", { class: "muted" }, "Generating… this page follows the order."),
    );
    return done;
  };

  const poll = async () => {
    if (stale()) return;
    try {
      const order = await api.get(`/v1/orders/${encodeURIComponent(id)}`);
      if (stale()) return;
      if (!draw(order)) timer = setTimeout(poll, 1000);
    } catch (error) {
      replace(status, h("span", { class: "inline-error" }, String(error)));
      progress.hidden = true;
    }
  };
  const remove = h(
    "button",
    {
      type: "button",
      class: "danger",
      onclick: async () => {
        if (!(await confirmDialog("Delete this order?", h("p", {}, "What it generated stays."), "Delete the order"))) return;
        await attempt("Order deletion", async () => {
          await api.send("DELETE", `/v1/orders/${encodeURIComponent(id)}`);
          navigate("#/orders");
        });
      },
    },
    "Delete the order",
  );
  replace(main, heading(`Order ${id.slice(0, 8)}`), status, progress, details, h("p", {}, remove));
  await poll();
}
