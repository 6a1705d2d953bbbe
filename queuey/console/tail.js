// The live tail: one queue's messages as they arrive, over Server-Sent Events (SPEC §7).
//
// EventSource cannot send an Authorization header, so the stream is opened with
// a scoped token (SPEC §8) in `access_token=`: read-only, this queue only, one
// hour. The browser itself reconnects a broken stream with Last-Event-ID, and
// the server resumes after that id: no gap, no repeat. Two cases it cannot
// cover are handled here, by opening a new stream at `since` = the last id seen
// (inclusive, so that one event is skipped):
//   - the server ended the stream for good (token expired: 401; it is then
//     minted again), which makes the browser give up;
//   - nothing has arrived yet: the first stream starts at `since` = the newest
//     message present when the tail started, so even then nothing is missed.

import { ApiError, call, idOrder, path, session } from "/console/api.js";

const RETRIES = 3; // fresh streams opened in a row without an event before giving up

export class Tail {
  /**
   * @param queue the queue's name
   * @param partitions partition numbers (null: every one the token allows)
   * @param onMessage called with each message ({message_id, timestamp, body, partition, ...})
   * @param onStatus called with a short state ("connecting", "live", ...) and an optional error
   */
  constructor(queue, partitions, onMessage, onStatus) {
    Object.assign(this, { queue, partitions, onMessage, onStatus });
    this.source = null;
    this.token = null;
    this.lastId = null; // the id of the last event shown
    this.skipId = null; // `since` is inclusive: the event of this id was already shown
    this.failures = 0;
    this.stopped = true;
  }

  async start() {
    this.stopped = false;
    this.onStatus("connecting");
    try {
      this.token = await this.mint();
      // Start at the newest message now present, so that what is posted from here on is
      // never missed, even before the first event (an empty queue: from the start).
      const newest = await this.newest();
      this.lastId = newest;
      this.open(newest ?? "0", newest);
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

  /** The id of the newest readable message of the tailed partitions, or null. */
  async newest() {
    const answer = await call("GET", path(this.queue), {
      query: { order: "descending", limit: 1, partitions: (this.partitions || [1]).join(",") },
      headers: { Authorization: `Bearer ${this.token}` },
    });
    const ids = answer.messages.map((m) => m.message_id);
    ids.sort((a, b) => (idOrder(a) < idOrder(b) ? -1 : 1));
    return ids.length ? ids[ids.length - 1] : null;
  }

  open(since, skipId) {
    if (this.source) this.source.close();
    this.skipId = skipId;
    const url = new URL(path(this.queue, "stream"), location.origin);
    url.searchParams.set("access_token", this.token);
    url.searchParams.set("since", since);
    if (this.partitions) url.searchParams.set("partitions", this.partitions.join(","));
    const source = new EventSource(url);
    this.source = source;
    source.addEventListener("open", () => {
      if (source === this.source) this.onStatus("live");
    });
    source.addEventListener("message", (event) => {
      if (source !== this.source) return;
      this.failures = 0;
      if (event.lastEventId === this.skipId) return;
      this.lastId = event.lastEventId;
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

  /** Mint a token again and open a new stream after the last id seen. */
  async renew() {
    this.failures += 1;
    if (this.failures > RETRIES) {
      this.stop(new ApiError(0, { error_msg: { stream: "The stream was refused; is the queue still there?" } }));
      return;
    }
    this.onStatus("reconnecting");
    try {
      this.token = await this.mint();
      // Probe first: EventSource hides why a stream was refused; a plain read shows it.
      await this.newest();
      this.open(this.lastId ?? "0", this.lastId);
    } catch (error) {
      this.stop(error);
    }
  }
}
