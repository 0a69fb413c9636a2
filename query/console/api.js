// The console's calls to the query role: JSON requests with the token, and the live stream.
//
// The token comes once in the address (`#token=…`, never sent to a server or written to a
// log), is kept in this tab's sessionStorage and removed from the address bar.

const TOKEN_KEY = "chargewatch-token";

export function takeTokenFromAddress() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(history.state, "", location.pathname + location.search);
  }
}

export function setToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/// An error the server explained.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function answer(response) {
  const text = await response.text();
  let doc = null;
  try {
    doc = text ? JSON.parse(text) : null;
  } catch {
    doc = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (doc && doc.error) || `${response.status} ${response.statusText}`);
  }
  return doc;
}

export async function get(path) {
  return answer(await fetch(path, { headers: authHeaders() }));
}

export async function post(path, body) {
  return answer(await fetch(path, {
    method: "POST",
    headers: { ...authHeaders(), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }));
}

/// The answer to `sql` as CSV text (POST /v1/query, the whole answer).
export async function csv(sql) {
  const response = await fetch("/v1/query", {
    method: "POST",
    headers: { ...authHeaders(), "Content-Type": "application/json", Accept: "text/csv" },
    body: JSON.stringify({ sql }),
  });
  if (!response.ok) {
    await answer(response);
  }
  return response.text();
}

/// The live stream: Server-Sent Events read with fetch (so the token goes in a header),
/// reconnecting after 2 s with the id of the last alert event, so nothing is missed.
/// Listeners: `on(name, fn)` for `alert`, `overview`, `pads`, `reset`, and `status` (text).
export class LiveStream {
  constructor() {
    this.listeners = new Map();
    this.lastId = null;
    this.pads = false;
    this.controller = null;
    this.stopped = false;
  }

  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name).delete(fn);
  }

  emit(name, data) {
    for (const fn of this.listeners.get(name) || []) fn(data);
  }

  /// Starts after alert event `lastId` (from a list fetched just before).
  start(lastId) {
    if (this.lastId === null || lastId > this.lastId) this.lastId = lastId;
    if (!this.controller) this.connect();
  }

  /// Whether the pad ticks are wanted (the stations view): reconnects, resuming.
  wantPads(on) {
    if (this.pads === on) return;
    this.pads = on;
    if (this.controller) {
      this.controller.abort();
    }
  }

  async connect() {
    while (!this.stopped) {
      this.controller = new AbortController();
      const query = this.pads ? "?pads=1" : "";
      const headers = { ...authHeaders(), Accept: "text/event-stream" };
      if (this.lastId !== null) headers["Last-Event-ID"] = String(this.lastId);
      let reason = "disconnected";
      try {
        const response = await fetch(`/v1/console/live${query}`, { headers, signal: this.controller.signal });
        if (!response.ok) {
          reason = response.status === 401 ? "token needed" : `error ${response.status}`;
          throw new Error(reason);
        }
        this.emit("status", "live");
        await this.read(response.body.getReader());
        reason = "server closed the stream";
      } catch (error) {
        if (error.name === "AbortError") {
          reason = "reconnecting";
        } else if (error.message) {
          reason = error.message;
        }
      }
      this.emit("status", reason);
      if (reason === "reconnecting") continue;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        this.dispatch(block);
      }
    }
  }

  dispatch(block) {
    let name = "message";
    let id = null;
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
      else if (field === "id") id = Number(value);
    }
    if (data.length === 0) return;
    if (id !== null) this.lastId = id;
    if (name === "shutdown") {
      this.emit("status", "server stopping");
      return;
    }
    let doc;
    try {
      doc = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (name === "reset") this.lastId = null;
    this.emit(name, doc);
  }
}
