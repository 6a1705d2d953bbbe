// The Queuey console: views over the public API (see docs/browsers.md).
//
// Plain modules, no build step and no library. Each view is a <template> of
// index.html filled in here; the URL's hash says which one is shown
// (#/ queues, #/q/NAME a queue, #/q/NAME/groups, #/q/NAME/groups/GROUP).
// Everything the server says is shown as text (textContent), never as HTML.

import {
  ApiError,
  call,
  formatTime,
  idOrder,
  localInputSeconds,
  localInputValue,
  parsePartitions,
  path,
  session,
  signIn,
  signOut,
  timestampDate,
} from "/console/api.js";
import { Tail } from "/console/tail.js";

const main = document.getElementById("main");
const QUEUES_PER_PAGE = 20;
const TAIL_ROWS = 500; // the live tail keeps this many rows, newest first
const GROUP_REFRESH_MS = 5000;
let leaving = []; // what the shown view runs (a tail, a timer): stopped when it goes

// -- small helpers --------------------------------------------------------------

/** An element with attributes (`class`, `data-*`, properties such as `checked`) and children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key in node && !key.startsWith("data-")) node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat().map((c) => (c instanceof Node ? c : String(c ?? ""))));
  return node;
}

/**
 * Show the template `id` as the page; returns a query function within it. A view's
 * requests may answer after it is gone: they then fill its detached nodes, not the next view.
 */
function show(id) {
  const root = el("div", { class: "view" });
  root.append(document.getElementById(id).content.cloneNode(true));
  main.replaceChildren(root);
  const $ = (selector) => root.querySelector(selector);
  $.all = (selector) => root.querySelectorAll(selector);
  return $;
}

/** Show the view of `hash` (a link within the console). */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash; // route() runs on hashchange
}

/** Show an error (an ApiError's fields one per line), or hide the banner with null. */
function showError(error) {
  const box = document.getElementById("error");
  if (!error) {
    box.hidden = true;
    return;
  }
  const fields = error instanceof ApiError ? error.fields : { Error: error.message || String(error) };
  box.replaceChildren(
    ...Object.entries(fields).map(([key, text]) => el("div", {}, el("strong", {}, key), ": ", text)),
  );
  box.hidden = false;
}

let noticeTimer = null;
let noticeAt = 0;
function notice(text) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.hidden = false;
  noticeAt = Date.now();
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (box.hidden = true), 6000);
}

/** Run an action of the user; its failure is shown in the banner (and returned as undefined). */
async function attempt(action) {
  showError(null);
  try {
    return await action();
  } catch (error) {
    showError(error);
    return undefined;
  }
}

/** The fields of a form, trimmed, empty ones left out. */
function fieldsOf(form) {
  const fields = {};
  for (const [key, value] of new FormData(form)) {
    const text = String(value).trim();
    if (text !== "") fields[key] = text;
  }
  return fields;
}

function onSubmit(form, handler) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => handler(fieldsOf(form)));
  });
}

const queueHash = (name) => `#/q/${encodeURIComponent(name)}`;

/** The time of a version-1 UUID (100-ns ticks since 1582-10-15), as a Date. */
function idDate(id) {
  const ticks = BigInt("0x" + idOrder(id).slice(0, 15));
  return new Date(Number((ticks - 0x01b21dd213814000n) / 10000n));
}

function crumbs(...items) {
  const nav = document.getElementById("crumbs");
  nav.replaceChildren(
    ...items.flatMap(([label, href], i) => [i ? " › " : "", href ? el("a", { href }, label) : el("span", {}, label)]),
  );
}

// -- routing --------------------------------------------------------------------

function route() {
  for (const stop of leaving) stop();
  leaving = [];
  showError(null);
  // A notice stays across the move its own action made ("Queue x is ready."), not others.
  if (Date.now() - noticeAt > 1000) document.getElementById("notice").hidden = true;
  const s = session();
  document.getElementById("who").textContent = s
    ? `${s.app} · ${s.scheme === "Application" ? "application key" : "bearer token"}`
    : "";
  document.getElementById("sign-out").hidden = !s;
  if (!s) return showSignIn();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "q" && parts[1]) {
    if (parts[2] === "groups") return parts[3] ? showGroup(parts[1], parts[3]) : showGroups(parts[1]);
    return showQueue(parts[1]);
  }
  return showQueues();
}

window.addEventListener("hashchange", route);
document.getElementById("sign-out").addEventListener("click", () => {
  signOut();
  go("#/");
});

// -- sign in --------------------------------------------------------------------

function showSignIn() {
  crumbs(["Sign in"]);
  const $ = show("view-signin");
  onSubmit($("#signin"), async ({ app, scheme, secret }) => {
    signIn(app, scheme, secret);
    try {
      // An application key is checked at once (401 for a key the server does not know,
      // 404 for an unknown application); a token may open single queues only.
      if (scheme === "Application") await call("GET", path(), { query: { limit: 1 } });
    } catch (error) {
      signOut();
      throw error;
    }
    go("#/");
  });
}

// -- queues ---------------------------------------------------------------------

function showQueues() {
  crumbs(["Queues"]);
  const $ = show("view-queues");
  const rows = $("#queues tbody");

  async function load(offset) {
    const answer = await call("GET", path(), { query: { limit: QUEUES_PER_PAGE, offset, include_count: "true" } });
    rows.replaceChildren(
      ...answer.queues.map((q) =>
        el(
          "tr",
          {},
          el("td", { "data-label": "Name" }, el("a", { href: queueHash(q.queue_name) }, q.queue_name)),
          el("td", { "data-label": "Partitions" }, q.partitions),
          el("td", { "data-label": "Type" }, q.type),
          el("td", { "data-label": "Consistency" }, q.consistency),
          el("td", { "data-label": "Messages" }, q.count),
          el("td", { "data-label": "Created" }, formatTime(new Date(q.created * 1000))),
        ),
      ),
    );
    $("#queues-empty").hidden = answer.queues.length > 0 || Boolean(offset);
    // `next` is the first queue of the following page, passed back as `offset` (SPEC §3).
    $("#queues-next").disabled = !answer.next;
    $("#queues-next").onclick = () => attempt(() => load(answer.next));
    $("#queues-first").disabled = !offset;
  }
  $("#queues-first").onclick = () => attempt(() => load(null));

  onSubmit($("#create-queue"), async (fields) => {
    const answer = await call("POST", path(), { json: fields });
    notice(`Queue ${answer.queue_name} is ready.`);
    go(queueHash(answer.queue_name));
  });
  onSubmit($("#open-queue"), async ({ queue_name }) => {
    go(queueHash(queue_name));
  });
  attempt(() => load(null));
}

/** A queue's settings from the listing; null if it has none such; undefined if not the owner's. */
async function queueInfo(name) {
  try {
    const answer = await call("GET", path(), { query: { offset: name, limit: 1, include_count: "true" } });
    const found = answer.queues[0];
    return found && found.queue_name === name ? found : null;
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) return undefined; // not the owner
    throw error;
  }
}

// -- a queue: pages of messages, rewinding, posting, deleting, the live tail ------

async function showQueue(name) {
  crumbs(["Queues", "#/"], [name]);
  const $ = show("view-queue");
  $("#queue-title").textContent = name;
  $("#groups-link").href = `${queueHash(name)}/groups`;
  let count = null; // partitions, when the listing shows them (to the owner)
  async function describe() {
    const info = await queueInfo(name);
    count = info ? info.partitions : null;
    $("#queue-meta").textContent = info
      ? `${info.partitions} partition${info.partitions > 1 ? "s" : ""} · ${info.type} · ` +
        `${info.consistency} · ${info.count} message${info.count === 1 ? "" : "s"}` +
        (info.principles.length ? ` · principles: ${info.principles.join(", ")}` : "")
      : info === null
        ? "The application has no queue of that name."
        : "Only the owning application sees a queue's settings.";
    $("#partitions-hint").textContent = count
      ? `Partitions: "all" (1–${count}), or a list such as 1,3 or 2-4.`
      : 'Partitions: a list such as 1,3 or 2-4 ("all" reads partition 1 when the count is unknown).';
  }
  await attempt(describe);

  const form = $("#read");
  // One more than a page is read where a page continues from a message (`skip`): 999 at most.
  const limit = () => Math.max(1, Math.min(999, Number(form.elements.limit.value) || 20));
  const partitions = () => parsePartitions(form.elements.partitions.value, count);
  let page = new Map(); // partition -> {messages (oldest first), cursor that read them}

  /**
   * Read one page: `cursorOf(p)` gives each partition's {since, order, skip}. Partitions
   * reading from the same place share one request; `since` is inclusive, so the message
   * a page continues from (`skip`) is asked for one more and dropped.
   */
  async function read(cursorOf) {
    const cursors = new Map(partitions().map((p) => [p, cursorOf(p)]));
    const shared = new Map();
    for (const [p, c] of cursors) {
      const key = `${c.order}|${c.since ?? ""}`;
      if (!shared.has(key)) shared.set(key, { ...c, partitions: [] });
      shared.get(key).partitions.push(p);
    }
    const found = new Map([...cursors.keys()].map((p) => [p, []]));
    await Promise.all(
      [...shared.values()].map(async (c) => {
        const answer = await call("GET", path(name), {
          query: { partitions: c.partitions.join(","), since: c.since, order: c.order, limit: limit() + 1 },
        });
        for (const m of answer.messages) found.get(m.partition)?.push(m);
      }),
    );
    page = new Map();
    for (const [p, c] of cursors) {
      let messages = found.get(p).filter((m) => m.message_id !== c.skip).slice(0, limit());
      if (c.order === "descending") messages = messages.reverse();
      page.set(p, { messages, cursor: c });
    }
    render();
  }

  /** Where a page ends on one side, per partition: its first/last id, or where it was read from. */
  function edge(p, side) {
    const { messages, cursor } = page.get(p) || { messages: [], cursor: {} };
    if (messages.length) {
      const id = messages[side === "older" ? 0 : messages.length - 1].message_id;
      return { since: id, skip: id };
    }
    // Empty here: read again from where this partition was read. The message skipped there
    // stays skipped going on in the same direction, and is read going back the other way.
    if (cursor.since) {
      const same = (side === "older") === (cursor.order === "descending");
      return { since: cursor.since, skip: same ? (cursor.skip ?? null) : null };
    }
    // Read from an end: from where the page's other partitions end.
    const all = [...page.values()].flatMap((e) => e.messages.map((m) => m.message_id));
    all.sort((a, b) => (idOrder(a) < idOrder(b) ? -1 : 1));
    const bound = cursor.order === "descending" ? all[all.length - 1] : all[0];
    return { since: bound ?? null, skip: null };
  }

  function render() {
    const box = $("#messages");
    const total = [...page.values()].reduce((n, e) => n + e.messages.length, 0);
    box.replaceChildren(
      ...[...page].map(([p, { messages }]) =>
        el(
          "div",
          { class: "table-wrap partition" },
          el(
            "table",
            { class: "messages", "data-partition": p },
            el("caption", {}, `Partition ${p} · ${messages.length} message${messages.length === 1 ? "" : "s"}`),
            el("thead", {}, el("tr", {}, ["", "Time", "Id", "Type", "Body"].map((h) => el("th", {}, h)))),
            el(
              "tbody",
              {},
              messages.length ? [] : el("tr", {}, el("td", { class: "none", colSpan: 5 }, "No messages here.")),
              messages.map((m) =>
                el(
                  "tr",
                  { "data-id": m.message_id },
                  el("td", {}, el("input", { type: "checkbox", value: `${p}:${m.message_id}`, "aria-label": "Select" })),
                  el("td", { "data-label": "Time", title: m.timestamp }, formatTime(timestampDate(m.timestamp))),
                  el("td", { "data-label": "Id", class: "id" }, m.message_id),
                  el("td", { "data-label": "Type" }, m.content_type),
                  el("td", { "data-label": "Body", class: "body" }, m.body),
                ),
              ),
            ),
          ),
        ),
      ),
    );
    if (!total) box.prepend(el("p", { class: "hint empty" }, "No messages in this range."));
  }

  const turn = (cursorOf) => attempt(() => read(cursorOf));
  const newest = () => turn(() => ({ since: null, order: "descending" }));
  $("#oldest").onclick = () => turn(() => ({ since: null, order: "ascending" }));
  $("#newest").onclick = newest;
  $("#older").onclick = () => turn((p) => ({ ...edge(p, "older"), order: "descending" }));
  $("#newer").onclick = () => turn((p) => ({ ...edge(p, "newer"), order: "ascending" }));

  // The time control: read forwards from a time (or an id, or an epoch timestamp).
  onSubmit(form, async (fields) => {
    let since = fields.since;
    if (!since && fields.time) since = localInputSeconds(fields.time);
    if (!since) throw new ApiError(400, { error_msg: { since: "Choose a time, or give an id or a timestamp." } });
    await read(() => ({ since, order: "ascending" }));
  });
  for (const button of form.querySelectorAll("[data-ago]")) {
    button.onclick = () => {
      form.elements.since.value = "";
      form.elements.time.value = localInputValue(new Date(Date.now() - Number(button.dataset.ago) * 1000));
      form.requestSubmit();
    };
  }

  $("#delete-selected").onclick = () =>
    attempt(async () => {
      const refs = [...$.all("table.messages input:checked")].map((box) => box.value);
      if (!refs.length) throw new ApiError(400, { error_msg: { messages: "Select the messages to delete." } });
      // "P:ID,P:ID": hex digits, colons and commas need no escaping in a path.
      await call("DELETE", `${path(name)}/${refs.join(",")}`);
      notice(`Deleted ${refs.length} message${refs.length === 1 ? "" : "s"}.`);
      await describe();
      await read((p) => page.get(p)?.cursor ?? { since: null, order: "descending" });
    });

  onSubmit($("#post"), async ({ body, content_type, partition, ttl }) => {
    const headers = { "Content-Type": content_type || "text/plain" };
    if (partition) headers["X-Partition"] = partition;
    if (ttl) headers["X-TTL"] = ttl;
    const answer = await call("POST", path(name), { body, headers });
    const [m] = answer.messages;
    notice(`Posted ${m.key} to partition ${m.partition}.`);
    $("#post").elements.body.value = "";
    await describe();
    await read((p) => page.get(p)?.cursor ?? { since: null, order: "descending" });
  });

  // The tail reads the partitions chosen, else all of them when their number is known.
  setUpTail($, name, () => (form.elements.partitions.value.trim() || count ? partitions() : null));
  await newest();
}

function setUpTail($, name, partitions) {
  const toggle = $("#tail-toggle");
  const status = $("#tail-status");
  const rows = $("#tail tbody");
  let tail = null;
  const onMessage = (m) => {
    rows.prepend(
      el(
        "tr",
        { "data-id": m.message_id },
        el("td", { "data-label": "Partition" }, m.partition),
        el("td", { "data-label": "Time", title: m.timestamp }, formatTime(timestampDate(m.timestamp))),
        el("td", { "data-label": "Id", class: "id" }, m.message_id),
        el("td", { "data-label": "Body", class: "body" }, m.body),
      ),
    );
    while (rows.rows.length > TAIL_ROWS) rows.lastElementChild.remove();
  };
  const onStatus = (state, error) => {
    status.textContent = state;
    status.dataset.state = state;
    toggle.textContent = state === "stopped" || state === "failed" ? "Start" : "Stop";
    if (error) showError(error);
  };
  toggle.onclick = () => {
    if (tail && !tail.stopped) {
      tail.stop();
      return;
    }
    showError(null);
    tail = new Tail(name, partitions(), onMessage, onStatus);
    tail.start();
  };
  leaving.push(() => tail && tail.stop());
}

// -- consumer groups ------------------------------------------------------------

async function showGroups(name) {
  crumbs(["Queues", "#/"], [name, queueHash(name)], ["Groups"]);
  const $ = show("view-groups");
  $("#groups-title").textContent = `Consumer groups of ${name}`;
  onSubmit($("#create-group"), async ({ group, ...settings }) => {
    await call("PUT", path(name, "groups", group ?? ""), { json: settings });
    go(`${queueHash(name)}/groups/${encodeURIComponent(group)}`);
  });
  await attempt(async () => {
    const answer = await call("GET", path(name, "groups"));
    $("#groups tbody").replaceChildren(
      ...answer.groups.map((g) =>
        el(
          "tr",
          {},
          el(
            "td",
            { "data-label": "Group" },
            el("a", { href: `${queueHash(name)}/groups/${encodeURIComponent(g.group)}` }, g.group),
          ),
          el("td", { "data-label": "Guarantee" }, g.guarantee),
          el("td", { "data-label": "Lease" }, `${g.lease_seconds} s`),
          el("td", { "data-label": "Max deliveries" }, g.max_deliveries || "no limit"),
          el("td", { "data-label": "Ordered" }, g.ordered ? "yes" : "no"),
        ),
      ),
    );
    $("#groups-empty").hidden = answer.groups.length > 0;
  });
}

async function showGroup(name, group) {
  crumbs(["Queues", "#/"], [name, queueHash(name)], ["Groups", `${queueHash(name)}/groups`], [group]);
  const $ = show("view-group");
  $("#group-title").textContent = `Group ${group}`;
  const url = path(name, "groups", group);
  let partitionCount = null;

  function render(state) {
    partitionCount = state.partitions.length;
    $("#group-meta").textContent =
      `${state.guarantee} · lease ${state.lease_seconds} s` +
      (state.max_deliveries ? ` · at most ${state.max_deliveries} deliveries` : "") +
      (state.dead_letter_queue ? ` · dead letters to ${state.dead_letter_queue}` : "") +
      (state.ordered ? " · ordered" : "");
    $("#group-state tbody").replaceChildren(
      ...state.partitions.map((p) =>
        el(
          "tr",
          { "data-partition": p.partition },
          el("td", { "data-label": "Partition" }, p.partition),
          el("td", { "data-label": "Cursor", class: "id" }, describeCursor(p.cursor)),
          el("td", { "data-label": "Pending", class: "pending" }, p.pending),
          el("td", { "data-label": "In flight", class: "in-flight" }, p.in_flight),
          el(
            "td",
            { "data-label": "Oldest pending" },
            p.oldest_pending_age === null ? "—" : `${Math.round(p.oldest_pending_age)} s`,
          ),
          el("td", { "data-label": "Consumers" }, p.consumers.join(", ") || "—"),
        ),
      ),
    );
    const counters = ["delivered", "acknowledged", "redelivered", "dead_lettered", "dropped", "expired"];
    $("#group-counters").replaceChildren(
      ...counters.map((c) => el("div", {}, el("dt", {}, c.replace("_", " ")), el("dd", { "data-counter": c }, state[c]))),
    );
  }

  const refresh = () => attempt(async () => render(await call("GET", url)));
  $("#group-refresh").onclick = refresh;
  // Refreshed in the background: an error shown for something else stays until it fails.
  const timer = setInterval(() => {
    if (document.visibilityState === "visible") call("GET", url).then(render, showError);
  }, GROUP_REFRESH_MS);
  leaving.push(() => clearInterval(timer));

  onSubmit($("#seek"), async ({ to, time, value, partitions }) => {
    let target = to;
    if (to === "time") target = time ? localInputSeconds(time) : null;
    if (to === "value") target = value;
    if (!target) throw new ApiError(400, { error_msg: { to: "Give the time, id or timestamp to seek to." } });
    const body = { to: target };
    if (partitions) body.partitions = parsePartitions(partitions, partitionCount);
    render(await call("POST", `${url}/seek`, { json: body }));
    notice(`Group ${group} now reads from ${to === "earliest" || to === "latest" ? to : target}.`);
  });
  await refresh();
}

/** A group's cursor: null (the start), a timestamp, or a message id (with its time). */
function describeCursor(cursor) {
  if (cursor === null || cursor === undefined) return "start";
  if (/^[0-9a-f]{32}$/i.test(cursor)) return `${formatTime(idDate(cursor))} (${cursor})`;
  return formatTime(timestampDate(cursor));
}

route();
