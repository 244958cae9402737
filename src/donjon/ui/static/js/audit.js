// Audit: the last records of the caller's project, and whether the local chain verifies (donjon's own
// /v1/audit API, for the readers policy allows: the project's admins by default).
import * as api from "./api.js";
import { field, h, replace, select, table, when } from "./dom.js";
import { heading, navigate, section } from "./ui.js";

function row(record) {
  const e = record.event;
  const initiator = e.initiator || {};
  const target = e.target || {};
  const reason = e.reason || {};
  return [
    String(record.seq),
    when(String(e.eventTime || "").replace(/\+0000$/, "")),
    initiator.id || "—",
    e.action,
    h("span", { class: "mono" }, target.name || "—"),
    h("span", { class: `status ${e.outcome}` }, `${e.outcome} ${reason.reasonCode || ""}`.trim()),
  ];
}

export async function auditView(main, { params }) {
  const limit = params.get("limit") || "50";
  const records = (await api.get(`/v1/audit/records?limit=${encodeURIComponent(limit)}`)).records;
  const size = select("limit", ["20", "50", "100", "500"].map((n) => [n, `last ${n}`]), limit);
  size.addEventListener("change", () => navigate(`#/audit?limit=${size.value}`));
  replace(main, heading("Audit"));
  // Verifying reads the whole log: on request, not on every visit.
  const chain = section(main, "Chain", async (body) => {
    const verdictOf = async () => {
      const verdict = await api.get("/v1/audit/verify");
      return [
        h(
          "p",
          { class: verdict.ok ? "chain ok" : "chain broken", role: "status" },
          verdict.ok
            ? `The audit chain verifies: ${verdict.records} records, every MAC and link checked.`
            : `The audit chain does NOT verify${verdict.line ? ` at line ${verdict.line}` : ""}: ${verdict.problem}`,
        ),
        verdict.note ? h("p", { class: "muted" }, verdict.note) : null,
      ];
    };
    const result = h("div");
    const button = h(
      "button",
      {
        type: "button",
        onclick: async () => {
          button.disabled = true;
          replace(result, h("p", { class: "muted" }, "Checking every record…"));
          try {
            replace(result, await verdictOf());
          } catch (error) {
            replace(result, h("p", { class: "inline-error" }, String(error)));
          }
          button.disabled = false;
        },
      },
      "Verify the chain",
    );
    replace(body, h("p", { class: "muted" }, "Checks every record's MAC and link, and the log's length, on this server."), button, result);
  });
  const list = section(main, "Records of this project", async (body) =>
    replace(
      body,
      h("div", { class: "filters" }, field("Show", size)),
      records.length
        ? table(["#", "Time", "User", "Action", "Path", "Outcome"], records.map(row), "Newest first")
        : h("p", { class: "empty" }, "No record of this project yet."),
    ),
  );
  await Promise.all([chain, list]);
}
