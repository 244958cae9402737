// Parts of the secret and container pages: ACLs, consumers, and deletion that shows the consumers first.
import * as api from "./api.js";
import { dl, field, form, h, replace, table, when } from "./dom.js";
import { attempt, confirmDialog, navigate, section, showNotice } from "./ui.js";

function consumerRows(consumers) {
  return consumers.map((c) => [c.service, c.resource_type, c.resource_id, when(c.created)]);
}

export async function consumersSection(body, path) {
  const answer = await api.get(`${path}/consumers?limit=100`);
  replace(
    body,
    answer.consumers.length
      ? table(["Service", "Resource type", "Resource id", "Since"], consumerRows(answer.consumers))
      : h("p", { class: "empty" }, "No consumer is registered."),
  );
}

// ACL: project access and users who may read. Shown to those the API lets read it (else its error).
export async function aclSection(body, path, reload) {
  const acl = (await api.get(`${path}/acl`)).read || {};
  const users = h("input", { name: "users", autocomplete: "off", value: (acl.users || []).join(", ") });
  const projectAccess = h("input", { type: "checkbox", name: "project-access", checked: acl["project-access"] !== false });
  const aclForm = form(
    { "aria-label": "Change the ACL" },
    async () => {
      const list = users.value.split(",").map((u) => u.trim()).filter(Boolean);
      await attempt("ACL update", async () => {
        await api.send("PUT", `${path}/acl`, { read: { users: list, "project-access": projectAccess.checked } });
        showNotice("ACL saved.");
        await reload();
      });
    },
    field("Users who may read", users, "User ids, comma-separated, of any project."),
    h("div", { class: "field check" }, h("label", {}, projectAccess, " Every member of the project may read it")),
    h("div", { class: "actions" }, [
      h("button", { type: "submit" }, "Save the ACL"),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: async () =>
            attempt("ACL deletion", async () => {
              await api.send("DELETE", `${path}/acl`);
              showNotice("ACL removed: the project's defaults apply.");
              await reload();
            }),
        },
        "Remove the ACL",
      ),
    ]),
  );
  replace(
    body,
    dl([
      ["Project access", acl["project-access"] === false ? "Only its creator, admins and listed users" : "Every member"],
      ["Users", (acl.users || []).join(", ") || "none"],
    ]),
    aclForm,
  );
}

// Deletion, after a confirmation that lists the consumers (who would lose it) first.
export async function deleteWithConsumers(kind, path, back) {
  let consumers = [];
  try {
    consumers = (await api.get(`${path}/consumers?limit=100`)).consumers;
  } catch (error) {
    consumers = null; // the caller may delete without reading consumers; say so in the dialog
  }
  const content = h(
    "div",
    {},
    consumers === null
      ? h("p", {}, "Its consumers could not be read.")
      : consumers.length
        ? [
            h("p", { class: "warning" }, `${consumers.length} consumer(s) still use this ${kind}:`),
            table(["Service", "Resource type", "Resource id", "Since"], consumerRows(consumers)),
          ]
        : h("p", {}, `No consumer is registered for this ${kind}.`),
    h("p", {}, "Deleting cannot be undone."),
  );
  if (!(await confirmDialog(`Delete this ${kind}?`, content, `Delete the ${kind}`))) return;
  await attempt(`${kind[0].toUpperCase()}${kind.slice(1)} deletion`, async () => {
    await api.send("DELETE", consumers && consumers.length ? `${path}?force=true` : path);
    navigate(back);
  });
}

// The sections a secret's and a container's pages share, after their own: ACL, consumers, deletion.
export function accessSections(main, kind, path, back, reload) {
  return [
    section(main, "Access control (ACL)", async (body) => aclSection(body, path, reload)),
    section(main, "Consumers", async (body) => consumersSection(body, path)),
    section(main, "Delete", async (body) =>
      replace(
        body,
        h("button", { type: "button", class: "danger", onclick: () => deleteWithConsumers(kind, path, back) }, `Delete this ${kind}`),
      ),
    ),
  ];
}
