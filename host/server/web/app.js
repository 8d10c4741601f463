// The page of `podrun serve`: runs, a run with its verdict, evidence and
// live log, and a submit form. It uses only the API the CLI uses, with the
// tenant's token from this tab's session storage in the Authorization
// header, and writes data into the page as text, never as markup.

const TOKEN = "podrun-token";
const PAGE = 50;
const REFRESH_MS = 2000;

const $ = (selector) => document.querySelector(selector);

/// Elements by tag, with text children only.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

class Unauthorized extends Error {}

class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (options.json !== undefined) {
    headers.set("Content-Type", "application/json");
    options = { ...options, body: JSON.stringify(options.json) };
  }
  const response = await fetch(path, { ...options, headers, credentials: "omit", cache: "no-store" });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) {
    let code = "error";
    let message = `${response.status} ${response.statusText}`;
    let field;
    try {
      const body = await response.json();
      code = body.error.code;
      message = body.error.message;
      field = body.error.field;
    } catch (_) {
      // Not an API error body: the status says it.
    }
    throw new ApiError(response.status, code, message, field);
  }
  return response;
}

const json = async (path, options) => (await api(path, options)).json();

// ---- time ----

function ago(iso) {
  if (!iso) return "";
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function duration(from, to) {
  if (!from) return "";
  const ms = (to ? Date.parse(to) : Date.now()) - Date.parse(from);
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const ENDED = new Set(["succeeded", "failed", "cancelled", "lost"]);

function stateBadge(state) {
  return el("span", { class: `state state-${state}` }, state);
}

// ---- views ----

let stop = () => {};

function show(id) {
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== id;
  }
  // Keyboard and screen-reader users land on the new view's heading.
  const heading = document.querySelector(`#${id} h1`);
  if (heading && document.activeElement?.id !== "token") {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  const signedIn = id !== "signin";
  for (const link of document.querySelectorAll("[data-auth]")) link.hidden = !signedIn;
}

function notice(text) {
  $("#notice").textContent = text;
}

function signIn(message) {
  stop();
  sessionStorage.removeItem(TOKEN);
  show("signin");
  $("#signin-error").textContent = message || "";
  $("#token").value = "";
  $("#token").focus();
}

// -- runs --

const list = { cursors: [], filters: {} };

async function showRuns() {
  show("runs");
  document.title = "Runs · podrun";
  const form = $("#filters");
  form.state.value = list.filters.state || "";
  form.application.value = list.filters.application || "";
  let timer;
  let live = true;
  let shown = "";
  const schedule = (ms) => {
    timer = setTimeout(() => load().catch(retry), ms);
  };
  // A failed refresh is tried again, later; a 401 signs out.
  let delay = REFRESH_MS;
  const retry = (e) => {
    if (e instanceof Unauthorized) return failed(e);
    delay = Math.min(delay * 2, 30000);
    notice(`Could not refresh the runs (${e.message}); trying again.`);
    if (live) schedule(delay);
  };
  const load = async () => {
    if (document.hidden) return schedule(REFRESH_MS);
    const query = new URLSearchParams({ limit: PAGE });
    if (list.filters.state) query.set("state", list.filters.state);
    if (list.filters.application) query.set("application", list.filters.application);
    const cursor = list.cursors[list.cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    const page = await json(`/v1/runs?${query}`);
    if (!live) return;
    // Unchanged: the table (and the focus in it) stays as it is.
    const text = JSON.stringify(page);
    if (text !== shown) {
      shown = text;
      renderRuns(page);
    }
    if (delay !== REFRESH_MS) notice("");
    delay = REFRESH_MS;
    // When the first page of this load showed: what the web bench reads.
    if (performance.getEntriesByName("podrun:runs-rendered").length === 0) {
      performance.mark("podrun:runs-rendered");
    }
    schedule(REFRESH_MS);
  };
  stop = () => {
    live = false;
    clearTimeout(timer);
  };
  await load();
}

function renderRuns(page) {
  const rows = page.runs.map((run) =>
    el(
      "tr",
      { "data-state": run.state },
      el("td", {}, el("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, el("code", {}, run.id))),
      el("td", {}, run.application),
      el("td", {}, stateBadge(run.state)),
      el("td", {}, run.state === "failed" || run.state === "lost" ? run.result?.reason ?? "" : ""),
      el("td", {}, el("time", { datetime: run.createdAt, title: run.createdAt }, ago(run.createdAt))),
      el("td", {}, duration(run.startedAt, run.finishedAt)),
    ),
  );
  $("#runs-table tbody").replaceChildren(...rows);
  $("#runs-empty").hidden = rows.length > 0;
  $("#older").disabled = !page.next;
  $("#older").dataset.next = page.next || "";
  $("#newest").disabled = list.cursors.length === 0;
}

// -- one run --

async function showRun(id) {
  show("run");
  document.title = `Run ${id} · podrun`;
  $("#run-id").textContent = id;
  $("#log").replaceChildren();
  $("#log-search").value = "";
  $("#log-notice").hidden = true;
  $("#verdict").hidden = true;
  $("#pod").textContent = "";
  $("#changes").replaceChildren();
  delete $("#again").dataset.request;
  const controller = new AbortController();
  let timer;
  let live = true;
  stop = () => {
    live = false;
    clearTimeout(timer);
    controller.abort();
  };
  let delay = REFRESH_MS;
  const retry = (e) => {
    if (e instanceof Unauthorized || (e instanceof ApiError && e.status === 404)) return failed(e);
    delay = Math.min(delay * 2, 30000);
    if (live) timer = setTimeout(() => refresh().catch(retry), delay);
  };
  const refresh = async () => {
    const run = await json(`/v1/runs/${encodeURIComponent(id)}`);
    if (!live) return run;
    delay = REFRESH_MS;
    renderRun(run);
    if (!ENDED.has(run.state)) timer = setTimeout(() => refresh().catch(retry), REFRESH_MS);
    return run;
  };
  const run = await refresh();
  followLog(id, controller.signal).catch((e) => {
    if (e.name !== "AbortError") failed(e);
  });
  json(`/v1/runs/${encodeURIComponent(id)}/pod`)
    .then((pod) => {
      if (!live) return;
      $("#pod").textContent = JSON.stringify(pod.pod, null, 2);
      renderChanges(pod.changes || []);
      $("#again").dataset.request = JSON.stringify(pod.request);
    })
    .catch(() => {});
  return run;
}

function renderRun(run) {
  const state = $("#run-state");
  state.replaceWith(Object.assign(stateBadge(run.state), { id: "run-state" }));
  $("#run-app").textContent = `of ${run.application}`;
  const steps = [
    ["queued", run.createdAt],
    ["starting", run.startedAt],
    ["running", run.runningAt],
    [ENDED.has(run.state) ? run.state : "ended", run.finishedAt],
  ];
  $("#run-timeline").replaceChildren(
    ...steps.map(([name, at]) =>
      el(
        "li",
        { class: at ? "done" : "pending" },
        el("span", {}, name),
        " ",
        at ? el("time", { datetime: at, title: at }, new Date(at).toLocaleString()) : ENDED.has(run.state) ? "—" : "not yet",
      ),
    ),
  );
  $("#cancel").hidden = ENDED.has(run.state);
  $("#cancel").disabled = run.cancelRequested;
  const result = run.result;
  if (result) {
    $("#verdict").hidden = false;
    const fields = [
      ["Outcome", result.outcome],
      ["Reason", result.reason],
      ["Message", result.message],
      ["Exit code", result.exitCode],
      ["Retryable", result.retryable ? "yes" : "no"],
      ["Rule", result.rule],
    ].filter(([, value]) => value !== undefined && value !== null && value !== "");
    $("#verdict-fields").replaceChildren(...fields.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
    $("#evidence").replaceChildren(...(result.evidence || []).map((line) => el("li", {}, el("code", {}, line))));
    $("#containers tbody").replaceChildren(
      ...(result.containers || []).map((c) =>
        el("tr", {}, el("td", {}, c.name + (c.init ? " (init)" : "")), el("td", {}, c.state), el("td", {}, c.exitCode ?? ""), el("td", {}, c.reason ?? "")),
      ),
    );
  }
  const notices = [];
  if (run.log?.truncated) notices.push("The log reached its size cap: later lines were not kept.");
  if (run.state === "lost") notices.push("The run was lost: lines it printed at the end may be missing.");
  if (notices.length) {
    $("#log-notice").hidden = false;
    $("#log-notice").textContent = notices.join(" ");
  }
}

/// What each hook changed in the pod, in order (`podrun render --explain`).
function renderChanges(steps) {
  $("#changes").replaceChildren(
    ...steps.map((step) =>
      el(
        "li",
        {},
        el("span", { class: "hook" }, `${step.kind} hook ${step.hook}`),
        step.changes.length
          ? el("ul", {}, ...step.changes.map((change) => el("li", {}, el("code", {}, change))))
          : el("span", { class: "hint" }, ": no change"),
      ),
    ),
  );
}

/// Reads the run's log as server-sent events (fetch, not EventSource: the
/// token goes in a header), resuming from the next line after a drop, so
/// that no line is lost or shown twice.
async function followLog(id, signal) {
  let offset = 0;
  let failures = 0;
  while (!signal.aborted) {
    try {
      const response = await api(`/v1/runs/${encodeURIComponent(id)}/logs?follow=true&offset=${offset}`, { signal });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parseEvent(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event.type === "line") {
            appendLine(JSON.parse(event.data));
            offset = Number(event.id) + 1;
            failures = 0;
          } else if (event.type === "gap") {
            appendGap(JSON.parse(event.data));
          } else if (event.type === "end") {
            return;
          }
        }
      }
    } catch (e) {
      if (signal.aborted || e instanceof Unauthorized || e instanceof ApiError) throw e;
      // A dropped connection: tried again below.
    }
    if (signal.aborted) return;
    failures += 1;
    if (failures > 10) {
      $("#log-notice").hidden = false;
      $("#log-notice").textContent = "The log stopped following: reload to see the rest.";
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000 * failures, 10000)));
  }
}

function parseEvent(text) {
  const event = { type: "message", data: "", id: "" };
  const data = [];
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0) continue;
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event.type = value;
    else if (field === "data") data.push(value);
    else if (field === "id") event.id = value;
  }
  event.data = data.join("\n");
  return event;
}

function appendLine({ container, line }) {
  const log = $("#log");
  const search = $("#log-search").value;
  // Following the end: kept at the end as lines arrive.
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const row = el("span", { class: "line" }, el("span", { class: "container" }, `${container} `), line, "\n");
  row.hidden = !matches(row, search);
  log.append(row);
  if (atEnd) log.scrollTop = log.scrollHeight;
}

/// Where lines may be missing: said in the log, where it is. A gap sent
/// again after a reconnect is shown once.
function appendGap({ line, message }) {
  const key = `${line}\n${message}`;
  for (const gap of document.querySelectorAll("#log .gap")) if (gap.dataset.key === key) return;
  const row = el("span", { class: "gap", role: "note" }, `Lines may be missing here: ${message}`, "\n");
  row.dataset.key = key;
  $("#log").append(row);
}

/// Whether a log row matches the search, its container's name included.
function matches(row, search) {
  return search === "" || row.textContent.includes(search);
}

function filterLog() {
  const search = $("#log-search").value;
  for (const row of document.querySelectorAll("#log .line")) row.hidden = !matches(row, search);
}

// -- submit --

let applications = null;
/// The request of the run "Submit again" was pressed on, for the form.
let again = null;

async function loadApplications() {
  if (!applications) applications = (await json("/v1/applications")).applications;
  $("#applications").replaceChildren(...applications.map((a) => el("option", { value: a.name })));
  return applications;
}

async function showSubmit(request) {
  show("submit");
  document.title = "Submit a run · podrun";
  stop = () => {};
  const apps = await loadApplications();
  const select = $("#submit-app");
  select.replaceChildren(...apps.map((a) => el("option", { value: a.name }, a.name)));
  if (request?.application) select.value = request.application;
  renderFields(request);
  showProblem($("#submit-form"), null);
  $("#submit-check").textContent = "";
  notice(request ? "The form holds that run's command and parameters; its stdin, callback, resources and pod override are not copied." : "");
  select.onchange = () => renderFields();
}

/// Words as one command line that splits back into them.
function shellJoin(words) {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)).join(" ");
}

/// A labelled input; `id` is given for names that are not fit for one.
function field(label, name, attrs = {}, hint, id = `submit-${name}`) {
  return el(
    "div",
    { class: "field" },
    el("label", { for: id }, label),
    el("input", { id, name, spellcheck: "false", "aria-describedby": hint ? `${id}-hint` : null, ...attrs }),
    hint ? el("p", { class: "hint", id: `${id}-hint` }, hint) : null,
  );
}

function renderFields(again) {
  // `again`: the values of the run submitted again, if any.
  const app = applications.find((a) => a.name === $("#submit-app").value);
  const fields = [];
  if (!app) return;
  if (app.command) {
    const value = again?.args?.length ? shellJoin(again.args) : "";
    fields.push(field("Command", "command", { value, placeholder: "sh -c 'echo hello'" }, "Split as a shell splits it."));
  }
  app.parameters.forEach((p, i) => {
    const value = again?.params?.[p.name] ?? p.default ?? "";
    const required = p.default === undefined;
    fields.push(field(`Parameter ${p.name}`, `param.${p.name}`, { value, required }, required ? "Required." : null, `submit-param-${i}`));
  });
  if (app.namespace) {
    const attrs = { value: again?.namespace ?? "" };
    if (app.namespaces?.length) {
      attrs.list = "submit-namespaces";
      fields.push(el("datalist", { id: "submit-namespaces" }, ...app.namespaces.map((n) => el("option", { value: n }))));
    }
    fields.push(field("Namespace", "namespace", attrs, app.namespaces?.length ? `One of: ${app.namespaces.join(", ")}` : null));
  }
  if (app.timeout) {
    const hint = app.maxTimeoutSeconds ? `At most ${app.maxTimeoutSeconds} s.` : null;
    fields.push(field("Timeout (seconds)", "timeout", { type: "number", min: 1, max: app.maxTimeoutSeconds, value: again?.timeout ?? "" }, hint));
  }
  if (app.image) fields.push(field("Image", "image", { value: again?.image ?? "" }));
  // Only what may be asked for: a resource without a bound may not.
  const { maxCpuMillis: cpu, maxMemoryBytes: memory } = app.resources ?? {};
  for (const kind of cpu === undefined ? [] : ["requests", "limits"]) {
    fields.push(field(`CPU ${kind === "requests" ? "request" : "limit"}`, `resources.${kind}.cpu`, { placeholder: "500m" }, `At most ${cpu}m.`));
  }
  for (const kind of memory === undefined ? [] : ["requests", "limits"]) {
    fields.push(field(`Memory ${kind === "requests" ? "request" : "limit"}`, `resources.${kind}.memory`, { placeholder: "256Mi" }, `At most ${memory} bytes.`));
  }
  if (app.podOverride?.length) {
    const id = "submit-podOverride";
    const open = app.podOverride.map((list) => list.join(", ")).join("; and within those: ");
    fields.push(
      el(
        "div",
        { class: "field" },
        el("label", { for: id }, "Pod override (JSON merge patch)"),
        el("textarea", { id, name: "podOverride", rows: 4, spellcheck: "false", placeholder: '{"spec": {}}', "aria-describedby": `${id}-hint` }),
        el("p", { class: "hint", id: `${id}-hint` }, `It may change: ${open}.`),
      ),
    );
  }
  $("#submit-fields").replaceChildren(...fields);
}

/// A random idempotency key (crypto.randomUUID needs https or localhost).
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/// The form's problem that the browser finds before the API could.
class FormProblem extends Error {
  constructor(field, message) {
    super(message);
    this.field = field;
  }
}

/// The request the form holds, as `POST /v1/runs` takes it.
function formBody(form) {
  const body = { application: form.application.value };
  const params = {};
  const resources = {};
  for (const input of form.querySelectorAll("input, textarea")) {
    const value = input.value.trim();
    const [group, kind, name] = input.name.split(".");
    if (value === "") continue;
    else if (input.name.startsWith("param.")) params[input.name.slice(6)] = input.value;
    else if (input.name === "timeout") body.timeout = Number(value);
    else if (group === "resources") (resources[kind] ??= {})[name] = value;
    else if (input.name === "podOverride") {
      try {
        body.podOverride = JSON.parse(value);
      } catch (e) {
        throw new FormProblem("podOverride", `podOverride: not JSON (${e.message})`);
      }
    } else body[input.name] = value;
  }
  if (Object.keys(params).length) body.params = params;
  if (Object.keys(resources).length) body.resources = resources;
  return body;
}

/// Shows the API's answer on the form: its message, and the field it is
/// about marked invalid (`params.NAME` is the input `param.NAME`).
function showProblem(form, error) {
  $("#submit-error").textContent = error ? error.message : "";
  const name = error?.field?.startsWith("params.") ? `param.${error.field.slice(7)}` : error?.field;
  for (const input of form.querySelectorAll("input, select, textarea")) {
    const bad = Boolean(name) && (input.name === name || input.name.startsWith(`${name}.`));
    if (bad) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    const hint = input.id ? document.getElementById(`${input.id}-hint`) : null;
    const described = [hint?.id, bad && "submit-error"].filter(Boolean).join(" ");
    if (described) input.setAttribute("aria-describedby", described);
    else input.removeAttribute("aria-describedby");
  }
}

/// Checks the form as a submit would, hooks included (`dryRun=true`):
/// the API's own validation, before anything is queued.
let checking = 0;
async function check(form) {
  const mine = ++checking;
  $("#submit-check").textContent = "";
  try {
    const body = formBody(form);
    await json("/v1/runs?dryRun=true", { method: "POST", json: body });
    if (mine !== checking) return;
    showProblem(form, null);
    $("#submit-check").textContent = "The server accepts this run.";
  } catch (e) {
    if (mine !== checking) return;
    if (e instanceof Unauthorized) return signIn("The token was not accepted.");
    // Over the tenant's rate: the submit itself will say so.
    if (e instanceof FormProblem || (e instanceof ApiError && e.status !== 429)) showProblem(form, e);
  }
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  checking += 1;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const body = formBody(form);
    const run = await json("/v1/runs", { method: "POST", json: body, headers: { "Idempotency-Key": newKey() } });
    location.hash = `#/runs/${encodeURIComponent(run.id)}`;
  } catch (e) {
    if (e instanceof Unauthorized) return signIn("The token was not accepted.");
    showProblem(form, e);
    $("#submit-check").textContent = "";
  } finally {
    button.disabled = false;
  }
}

// ---- wiring ----

function failed(e) {
  if (e instanceof Unauthorized) {
    signIn(sessionStorage.getItem(TOKEN) ? "The token was not accepted." : "");
    return;
  }
  notice(e instanceof ApiError && e.status === 404 ? "No such run." : `Something went wrong: ${e.message}`);
}

async function route() {
  if (location.hash && !location.hash.startsWith("#/")) return;
  stop();
  notice("");
  const hash = location.hash || "#/runs";
  // In-page anchors (the skip link) are not routes.
  if (!hash.startsWith("#/")) return;
  try {
    if (hash === "#/signin") return signIn();
    if (hash === "#/submit") {
      const request = again;
      again = null;
      return await showSubmit(request || undefined);
    }
    const match = /^#\/runs\/([a-z0-9-]+)$/.exec(hash);
    if (match) return await showRun(match[1]);
    return await showRuns();
  } catch (e) {
    failed(e);
  }
}

function start() {
  $("#signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("#token").value.trim();
    $("#token").value = "";
    // A header value: printable ASCII only.
    if (!/^[\x21-\x7e]+$/.test(token)) {
      $("#signin-error").textContent = "That is not a token.";
      return;
    }
    sessionStorage.setItem(TOKEN, token);
    try {
      await json("/v1/runs?limit=1");
      if (location.hash === "#/signin" || location.hash === "") location.hash = "#/runs";
      else await route();
    } catch (e) {
      failed(e);
    }
  });
  $("#sign-out").addEventListener("click", () => {
    // A new document: nothing of the tenant's stays in the page.
    sessionStorage.removeItem(TOKEN);
    location.hash = "#/signin";
    location.reload();
  });
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    list.filters = { state: form.state.value, application: form.application.value.trim() };
    list.cursors = [];
    route();
  });
  $("#older").addEventListener("click", (event) => {
    list.cursors.push(event.target.dataset.next);
    route();
  });
  $("#newest").addEventListener("click", () => {
    list.cursors = [];
    route();
  });
  $("#cancel").addEventListener("click", async () => {
    const id = $("#run-id").textContent;
    $("#cancel").disabled = true;
    try {
      await api(`/v1/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      notice("Cancel requested: the pod stops with its grace period.");
    } catch (e) {
      failed(e);
    }
  });
  $("#again").addEventListener("click", () => {
    again = JSON.parse($("#again").dataset.request || "null");
    location.hash = "#/submit";
  });
  $("#log-search").addEventListener("input", filterLog);
  $("#submit-form").addEventListener("submit", submit);
  // Each finished edit is checked as a submit would be.
  $("#submit-form").addEventListener("change", (event) => check(event.currentTarget));
  window.addEventListener("hashchange", route);
  route();
}

start();
