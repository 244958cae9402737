// Containers: list, create a generic one from secrets, detail (secrets, ACL, consumers), delete.
import * as api from "./api.js";
import { dl, field, form, h, idOf, pager, replace, select, table, when } from "./dom.js";
import { accessSections } from "./shared.js";
import { attempt, heading, navigate, section } from "./ui.js";

export async function containersView(main, { params }) {
  const q = { limit: params.get("limit") || "10", offset: params.get("offset") || "0" };
  const body = await api.get(`/v1/containers${api.query(q)}`);
  replace(
    main,
    heading("Containers"),
    h("p", {}, h("a", { href: "#/containers/new", class: "button" }, "New container")),
    body.containers.length
      ? table(
          ["Name", "Type", "Secrets", "Created"],
          body.containers.map((c) => [
            h("a", { href: `#/containers/${idOf(c.container_ref)}` }, c.name || "(unnamed)"),
            c.type,
            String((c.secret_refs || []).length),
            when(c.created),
          ]),
          `${body.total} containers`,
        )
      : h("p", { class: "empty" }, "No container."),
    pager("#/containers", params, body.total, body.containers.length),
  );
}

function secretRow() {
  const name = h("input", { name: "ref_name", autocomplete: "off" });
  const id = h("input", { name: "secret_id", autocomplete: "off", class: "mono" });
  return { name, id, el: h("div", { class: "row" }, field("Name in the container", name), field("Secret id", id)) };
}

export async function newContainerView(main) {
  const name = h("input", { name: "name", autocomplete: "off" });
  const type = select("type", [["generic", "generic"]], "generic");
  const rows = [secretRow()];
  const list = h("div", {}, rows.map((r) => r.el));
  replace(
    main,
    heading("New container"),
    form(
      { class: "card" },
      async () => {
        await attempt("Container creation", async () => {
          // Refs as the server writes them (its host_href), read from each secret.
          const refs = [];
          for (const r of rows.filter((row) => row.id.value.trim())) {
            const secret = await api.get(`/v1/secrets/${encodeURIComponent(idOf(r.id.value.trim()))}`);
            refs.push({ name: r.name.value.trim() || undefined, secret_ref: secret.secret_ref });
          }
          const created = await api.send("POST", "/v1/containers", { name: name.value.trim() || undefined, type: type.value, secret_refs: refs });
          navigate(`#/containers/${idOf(created.container_ref)}`);
        });
      },
      field("Name", name),
      field("Type", type, "rsa and certificate containers come from orders."),
      h("fieldset", {}, h("legend", {}, "Secrets"), list),
      h("div", { class: "actions" }, [
        h(
          "button",
          {
            type: "button",
            class: "secondary",
            onclick: () => {
              const row = secretRow();
              rows.push(row);
              list.append(row.el);
              row.name.focus();
            },
          },
          "Add another secret",
        ),
        h("button", { type: "submit" }, "Create the container"),
      ]),
    ),
  );
}

export async function containerView(main, { args }) {
  const [id] = args;
  const path = `/v1/containers/${encodeURIComponent(id)}`;
  const container = await api.get(path);
  const reload = () => containerView(main, { args });
  replace(
    main,
    heading(container.name || "(unnamed container)"),
    h("p", { class: "muted mono" }, id),
    dl([
      ["Type", container.type],
      ["Created", when(container.created)],
      ["Creator", container.creator_id],
    ]),
  );
  await Promise.all([
    section(main, "Secrets", async (body) =>
      replace(
        body,
        (container.secret_refs || []).length
          ? table(
              ["Name", "Secret"],
              container.secret_refs.map((r) => [r.name || "—", h("a", { href: `#/secrets/${idOf(r.secret_ref)}`, class: "mono" }, idOf(r.secret_ref))]),
            )
          : h("p", { class: "empty" }, "No secret."),
      ),
    ),
    ...accessSections(main, "container", path, "#/containers", reload),
  ]);
}
