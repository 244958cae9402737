// The API client. The credential lives in this module's memory only: never in a cookie, localStorage,
// sessionStorage or a URL. Reloading the page signs out.

let session = null;

export class ApiError extends Error {
  constructor(status, title, description) {
    super(description || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.description = description;
  }

  toString() {
    return `${this.status} ${this.title}${this.description ? `: ${this.description}` : ""}`;
  }
}

// headers: what every request carries (X-Auth-Token, or dev mode's X-Project-Id...); label: who, for display.
export function signIn(headers, identity) {
  session = { headers: { ...headers }, identity };
}

export function signOut() {
  session = null;
}

export function identity() {
  return session ? session.identity : null;
}

export function signedIn() {
  return session !== null;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (body && typeof body === "object" && "code" in body) {
    return new ApiError(response.status, body.title, body.description);
  }
  return new ApiError(response.status, response.statusText || "Error", "");
}

// One API request. `json` is sent as the body; `extraHeaders` can override the session's (the sign-in
// check sends the credential being tried). Throws ApiError for any status >= 400.
export async function request(method, path, { json, body, accept, extraHeaders, anonymous } = {}) {
  const headers = new Headers({ "OpenStack-API-Version": "key-manager 1.2" });
  if (session && !anonymous) for (const [k, v] of Object.entries(session.headers)) headers.set(k, v);
  for (const [k, v] of Object.entries(extraHeaders || {})) headers.set(k, v);
  headers.set("Accept", accept || "application/json");
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  const response = await fetch(path, {
    method,
    headers,
    body,
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
    referrerPolicy: "no-referrer",
  });
  if (!response.ok) throw await errorOf(response);
  return response;
}

export async function get(path) {
  return (await request("GET", path)).json();
}

export async function send(method, path, json) {
  const response = await request(method, path, json === undefined ? {} : { json });
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// A payload as the console shows it: text when it is UTF-8, else base64 of its bytes.
export async function payloadOf(response) {
  const bytes = new Uint8Array(await response.arrayBuffer());
  const type = response.headers.get("Content-Type") || "";
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    if (type.startsWith("text/") || !/[\u0000-\u0008\u000e-\u001f]/.test(text)) return { text, binary: false, type };
  } catch {
    // not UTF-8: shown as base64
  }
  let raw = "";
  for (const b of bytes) raw += String.fromCharCode(b);
  return { text: btoa(raw), binary: true, type };
}
