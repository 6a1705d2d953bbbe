// The live tail: one queue's messages as they arrive, over Server-Sent Events (SPEC §7).
//
// EventSource cannot send an Authorization header, so the stream is opened with
// a scoped token (SPEC §8) in `access_token=`: read-only, this queue only, one
// hour. The browser itself reconnects a broken stream with Last-Event-ID, and
// the server resumes after that id: no gap, no repeat. The tail keeps its own
// resume point too (`since`, inclusive, and the one event to skip there), for
// the two cases the browser cannot cover:
//   - the server refused the stream for good (the token expired: 401), so the
//     browser gave up: a new token is minted and a new stream opened there;
//   - nothing has arrived yet: a stream opened without `since` starts "at the
//     end", which moves; so the first stream starts at a fixed point, the newest
//     message present when the tail starts.

import { ApiError, call, idOrder, path, serverTime, session } from "/console/api.js";

const RETRIES = 3; // fresh streams opened in a row without an event before giving up

export class Tail {
  /**
   * @param queue the queue's name
   * @param partitions partition numbers (null: unknown, every one the token allows)
   * @param onMessage called with each message ({message_id, timestamp, body, partition, ...})
   * @param onStatus called with a short state ("connecting", "live", ...) and an optional error
   */
  constructor(queue, partitions, onMessage, onStatus) {
    Object.assign(this, { queue, partitions, onMessage, onStatus });
    this.source = null;
    this.token = null;
    this.since = null; // where a new stream starts (inclusive) ...
    this.skip = null; // ... and the id of the event there that was already shown
    this.failures = 0;
    this.stopped = true;
  }

  async start() {
    this.stopped = false;
    this.onStatus("connecting");
    try {
      this.token = await this.mint();
      await this.anchor();
      this.open();
    } catch (error) {
      this.stop(error);
    }
  }

  stop(error) {
    this.stopped = true;
    if (this.source) this.source.close();
    this.source = null;
    this.onStatus(error ? "failed" : "stopped", error);
  }

  /** A scoped read token for this queue; signed in with a token that cannot mint, that one. */
  async mint() {
    const s = session();
    try {
      const answer = await call("POST", path(this.queue, "tokens"), { json: { scope: "read", ttl: 3600 } });
      return answer.token;
    } catch (error) {
      // A scoped token cannot mint another: it is its own read token, if its scope allows.
      if (s.scheme === "Bearer" && error instanceof ApiError && error.status === 403) return s.secret;
      throw error;
    }
  }

  /** A range read with the stream's token (it shows why a stream would be refused). */
  read(query) {
    return call("GET", path(this.queue), { query, headers: { Authorization: `Bearer ${this.token}` } });
  }

  /**
   * The first resume point: just after the newest message of the tailed partitions (an
   * empty queue: its start). Partitions unknown: all a queue may have (1..200); a token of
   * some partitions only refuses that (403), and the point is then the server's clock now,
   * to the second (the tail may begin with the messages of the last second).
   */
  async anchor() {
    const partitions = this.partitions || Array.from({ length: 200 }, (_, i) => i + 1);
    let answer;
    try {
      answer = await this.read({ order: "descending", limit: 1, partitions: partitions.join(",") });
    } catch (error) {
      if (this.partitions || !(error instanceof ApiError && error.status === 403)) throw error;
      this.since = String(Math.floor(serverTime() / 1000));
      return;
    }
    const ids = answer.messages.map((m) => m.message_id).sort((a, b) => (idOrder(a) < idOrder(b) ? -1 : 1));
    const newest = ids.length ? ids[ids.length - 1] : null;
    this.since = newest ?? "0";
    this.skip = newest;
  }

  open() {
    if (this.source) this.source.close();
    const url = new URL(path(this.queue, "stream"), location.origin);
    url.searchParams.set("access_token", this.token);
    url.searchParams.set("since", this.since);
    if (this.partitions) url.searchParams.set("partitions", this.partitions.join(","));
    const source = new EventSource(url);
    const skip = this.skip;
    this.source = source;
    source.addEventListener("open", () => {
      if (source === this.source) this.onStatus("live");
    });
    source.addEventListener("message", (event) => {
      if (source !== this.source || event.lastEventId === skip) return;
      this.failures = 0;
      this.since = this.skip = event.lastEventId;
      this.onMessage(JSON.parse(event.data));
    });
    source.addEventListener("error", () => {
      if (source !== this.source || this.stopped) return;
      if (source.readyState === EventSource.CONNECTING) {
        this.onStatus("reconnecting"); // the browser retries with Last-Event-ID
      } else {
        this.renew(); // refused for good (e.g. the token expired)
      }
    });
  }

  /** Mint a token again and open a new stream at the resume point. */
  async renew() {
    this.failures += 1;
    if (this.failures > RETRIES) {
      this.stop(new ApiError(0, { error_msg: { stream: "The stream was refused again and again." } }));
      return;
    }
    this.onStatus("reconnecting");
    try {
      this.token = await this.mint();
      await this.read({ limit: 1 }); // EventSource hides why it was refused; this shows it
      this.open();
    } catch (error) {
      this.stop(error);
    }
  }
}
