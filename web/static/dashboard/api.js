// Every request the dashboard makes goes through here, with the admin bearer token
// (docs/security.md). A 401 calls onUnauthorized once (the page asks for the token).
// Endpoints: docs/dashboard.md.

// Offered on /ws/state; the gateway selects it (docs/protocol.md, section 3).
export const SUBPROTOCOL = "voxgate.v1";

export class Api {
  constructor(base = location.origin, { token = null, onUnauthorized = null } = {}) {
    this.base = new URL(base, location.href);
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  _url(path) {
    return new URL(path.replace(/^\//, ""), this.base.href.endsWith("/") ? this.base : `${this.base}/`);
  }

  async _get(path, method = "GET") {
    const headers = this.token ? { authorization: `Bearer ${this.token}` } : {};
    const response = await fetch(this._url(path), { method, headers });
    if (response.status === 401 && this.onUnauthorized) {
      const ask = this.onUnauthorized;
      this.onUnauthorized = null; // ask once
      ask();
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail || detail;
      } catch {
        /* not JSON */
      }
      throw new Error(`${method} ${path}: ${response.status} ${detail}`);
    }
    return response.json();
  }

  sessions(limit = 100) {
    return this._get(`/api/sessions?limit=${limit}`);
  }

  session(id) {
    return this._get(`/api/sessions/${encodeURIComponent(id)}`);
  }

  events(id) {
    return this._get(`/api/sessions/${encodeURIComponent(id)}/events`);
  }

  workflow(name) {
    return this._get(`/api/workflows/${encodeURIComponent(name)}`);
  }

  flow(name) {
    return this._get(`/api/flows/${encodeURIComponent(name)}`);
  }

  // A single-use ticket that opens /ws/state once, within seconds: the admin token itself
  // never goes in a WebSocket URL, where access logs and proxies would keep it.
  async wsTicket() {
    return (await this._get("/api/ws-ticket", "POST")).ticket;
  }

  // The live stream: calls onMessage(parsed) for each message, onStatus(connected) when the
  // connection opens or drops, and reconnects with backoff (each reconnect starts with a
  // fresh snapshot, so nothing is missed, and with a fresh ticket). Returns a function that
  // closes it for good; `this.socket` is the current connection.
  stream({ session = null, onMessage, onStatus = () => {} }) {
    let ws = null;
    let closed = false;
    let delay = 250;
    const retry = () => {
      if (!closed) setTimeout(open, (delay = Math.min(delay * 2, 5000)));
    };
    const open = async () => {
      const url = this._url("/ws/state");
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      if (session) url.searchParams.set("session", session);
      if (this.token) {
        // browsers send no headers on WebSockets: a ticket, fetched with the bearer header
        try {
          url.searchParams.set("ticket", await this.wsTicket());
        } catch {
          onStatus(false);
          retry();
          return;
        }
      }
      if (closed) return;
      ws = this.socket = new WebSocket(url, [SUBPROTOCOL]);
      ws.onopen = () => {
        delay = 250;
        onStatus(true);
      };
      ws.onmessage = (e) => {
        let message;
        try {
          message = JSON.parse(e.data);
        } catch {
          return;
        }
        onMessage(message);
      };
      ws.onclose = () => {
        onStatus(false);
        retry();
      };
    };
    open();
    return () => {
      closed = true;
      if (ws) ws.close();
    };
  }
}
