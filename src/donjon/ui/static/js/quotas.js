// Quotas: the project's effective quotas, and for admins the per-project overrides (set, remove).
import * as api from "./api.js";
import { field, form, h, replace, table } from "./dom.js";
import { attempt, heading, section, showNotice } from "./ui.js";

const KINDS = ["secrets", "orders", "containers", "consumers", "cas"];
const shown = (n) => (n < 0 ? "unlimited" : n === 0 ? "disabled" : String(n));

async function overrides(body) {
  const reload = () => overrides(body);
  const list = await api.get("/v1/project-quotas?limit=100");
  const project = h("input", { name: "project_id", required: true, autocomplete: "off" });
  const inputs = Object.fromEntries(KINDS.map((k) => [k, h("input", { type: "number", name: k, min: "-1", inputmode: "numeric" })]));
  replace(
    body,
    list.project_quotas.length
      ? table(
          ["Project", ...KINDS, ""],
          list.project_quotas.map((p) => [
            h("span", { class: "mono" }, p.project_id),
            ...KINDS.map((k) => (k in p.project_quotas ? shown(p.project_quotas[k]) : "default")),
            h(
              "button",
              {
                type: "button",
                class: "link",
                "aria-label": `Remove the quotas of ${p.project_id}`,
                onclick: () =>
                  attempt("Project Quotas deletion", async () => {
                    await api.send("DELETE", `/v1/project-quotas/${encodeURIComponent(p.project_id)}`);
                    await reload();
                  }),
              },
              "Remove",
            ),
          ]),
        )
      : h("p", { class: "empty" }, "No project has quotas of its own."),
    form(
      { class: "card", "aria-label": "Set a project's quotas" },
      async () => {
        const values = {};
        for (const k of KINDS) if (inputs[k].value !== "") values[k] = Number(inputs[k].value);
        await attempt("Project Quotas update", async () => {
          await api.send("PUT", `/v1/project-quotas/${encodeURIComponent(project.value.trim())}`, { project_quotas: values });
          showNotice("Quotas saved.");
          await reload();
        });
      },
      h("h3", {}, "Set a project's quotas"),
      field("Project id", project),
      h("div", { class: "row" }, KINDS.map((k) => field(k, inputs[k]))),
      h("p", { class: "muted" }, "-1: unlimited, 0: disabled; leave empty for the default."),
      h("button", { type: "submit" }, "Save"),
    ),
  );
}

export async function quotasView(main) {
  const { quotas } = await api.get("/v1/quotas");
  replace(
    main,
    heading("Quotas"),
    table(["Resource", "Quota of this project"], KINDS.map((k) => [k, shown(quotas[k])])),
  );
  await section(main, "Project quotas (administrators)", overrides);
}
