// Sign-in, one form per auth mode. Whatever the mode, the credential is checked by asking the API who it
// names (/ui/api/whoami) before the console keeps it, in memory only.
import * as api from "./api.js";
import { field, form, h, replace } from "./dom.js";
import { attempt, heading } from "./ui.js";

async function check(headers) {
  return (await api.request("GET", "/ui/api/whoami", { anonymous: true, extraHeaders: headers })).json();
}

function tokenForm(label, header, onDone, hint) {
  const token = h("input", { type: "password", name: "token", autocomplete: "off", required: true, spellcheck: "false" });
  return form(
    { class: "card", "aria-label": `Sign in with a ${label}` },
    async () => {
      const value = token.value.trim();
      const headers = { [header]: value };
      await attempt("Sign-in", async () => {
        const who = await check(headers);
        token.value = "";
        onDone(headers, who);
      });
    },
    field(label, token, hint),
    h("button", { type: "submit" }, "Sign in"),
  );
}

function devForm(onDone) {
  const project = h("input", { name: "project", required: true, autocomplete: "off", value: "demo" });
  const user = h("input", { name: "user", autocomplete: "off", value: "dev-user" });
  const roles = h("input", { name: "roles", autocomplete: "off", value: "admin" });
  return form(
    { class: "card", "aria-label": "Sign in (dev mode)" },
    async () => {
      const headers = { "X-Project-Id": project.value.trim() };
      if (user.value.trim()) headers["X-User-Id"] = user.value.trim();
      if (roles.value.trim()) headers["X-Roles"] = roles.value.trim();
      await attempt("Sign-in", async () => onDone(headers, await check(headers)));
    },
    h(
      "p",
      { class: "muted" },
      "Dev mode: the project, user and roles you pick are sent as headers and trusted as they are. " +
        "donjon serves dev mode on a loopback address only.",
    ),
    field("Project", project),
    field("User id", user),
    field("Roles", roles, "Comma-separated, e.g. admin, member or reader."),
    h("button", { type: "submit" }, "Sign in"),
  );
}

function keystonePasswordForm(onDone) {
  const username = h("input", { name: "username", required: true, autocomplete: "username" });
  const password = h("input", { type: "password", name: "password", required: true, autocomplete: "current-password" });
  const project = h("input", { name: "project", required: true, autocomplete: "off" });
  const userDomain = h("input", { name: "user_domain", value: "Default", autocomplete: "off" });
  const projectDomain = h("input", { name: "project_domain", value: "Default", autocomplete: "off" });
  return form(
    { class: "card", "aria-label": "Sign in with a Keystone password" },
    async () => {
      const body = {
        username: username.value,
        password: password.value,
        project: project.value,
        user_domain: userDomain.value || "Default",
        project_domain: projectDomain.value || "Default",
      };
      await attempt("Sign-in", async () => {
        const response = await api.request("POST", "/ui/api/keystone/tokens", { anonymous: true, json: body });
        password.value = "";
        const answer = await response.json();
        const headers = { "X-Auth-Token": answer.token };
        onDone(headers, {
          project_id: answer.project_id,
          project_name: answer.project_name,
          user_id: answer.user_id,
          user_name: answer.user_name,
          roles: answer.roles,
          issued: true, // the console asked Keystone for it: signing out revokes it
        });
      });
    },
    h("h2", {}, "Keystone user and password"),
    field("User name", username),
    field("Password", password),
    field("Project", project),
    h(
      "details",
      {},
      h("summary", {}, "Domains"),
      field("User domain", userDomain),
      field("Project domain", projectDomain),
    ),
    h("button", { type: "submit" }, "Sign in"),
  );
}

export function signInView(main, config, onDone, message) {
  const forms = [];
  if (config.auth === "dev") forms.push(devForm(onDone));
  else if (config.auth === "token")
    forms.push(tokenForm("donjon token", "X-Auth-Token", onDone, "A djt_… token from \"donjon token create\"."));
  else {
    forms.push(keystonePasswordForm(onDone));
    forms.push(
      h(
        "div",
        {},
        h("h2", {}, "Or a Keystone token"),
        tokenForm("Keystone token", "X-Auth-Token", onDone, "A project-scoped token, e.g. from \"openstack token issue\"."),
      ),
    );
  }
  replace(
    main,
    heading("Sign in"),
    message ? h("p", { class: "notice" }, message) : null,
    h("div", { class: "signin" }, forms),
  );
  const first = main.querySelector("input");
  if (first) first.focus();
}
