// The event channel: a WebSocket (GET /api/v1/events?access_token=…&since=…)
// with a long-poll fallback (GET /api/v1/events/poll?since=…&timeout=…).
// Events carry a sequence number; the channel remembers the last one it
// handed on and resumes after it when it reconnects, so nothing is lost or
// seen twice. A mailbox that was dropped and started again (the session was
// offline a while), a `gap` event or a batch flagged `gap` make it call
// onReset: the page then reloads its state.

const POLL_SECONDS = 25;
/** WebSocket attempts that fail before opening, before falling back to polling. */
const WS_FAILURES_BEFORE_POLL = 2;

export class EventChannel {
  /**
   * @param {object} o
   * @param {string} o.token bearer token
   * @param {number|null} o.since last sequence number seen (null: from the start)
   * @param {(event: object) => void} o.onEvent
   * @param {() => void} o.onReset the page must reload its state
   * @param {(status: string) => void} o.onStatus 'connecting' | 'live' | 'polling' | 'offline'
   * @param {() => void} o.onUnauthorized the token is no longer valid
   * @param {(seq: number|null) => void} o.onSeq the last sequence number changed
   */
  constructor(o) {
    this.token = o.token;
    this.since = o.since ?? null;
    this.onEvent = o.onEvent;
    this.onReset = o.onReset;
    this.onStatus = o.onStatus;
    this.onUnauthorized = o.onUnauthorized;
    this.onSeq = o.onSeq || (() => {});
    this.mode = typeof WebSocket === 'function' ? 'ws' : 'poll';
    this.wsFailures = 0;
    this.retries = 0;
    this.stopped = true;
    this.ws = null;
    this.abort = null;
    this.timer = null;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.onmessage = null;
      ws.onerror = null;
      ws.close(1000, 'bye');
    }
    if (this.abort) this.abort.abort();
  }

  /** Reconnects soon (after an error), waiting longer after each failure. */
  retry() {
    if (this.stopped) return;
    this.onStatus('offline');
    const delay = Math.min(30000, 500 * 2 ** Math.min(this.retries, 6)) * (0.75 + Math.random() / 2);
    this.retries += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  async connect() {
    if (this.stopped) return;
    this.onStatus('connecting');
    if (this.mode === 'poll') {
      this.pollLoop();
      return;
    }
    if (this.since !== null) {
      // A WebSocket resumes silently after `since`: first make sure the
      // mailbox is still the one `since` belongs to, and catch up.
      try {
        const batch = await this.fetchBatch(0);
        if (this.stopped) return;
        if (!this.handleBatch(batch)) {
          this.connect();
          return;
        }
      } catch (e) {
        if (!this.stopped && !(e && e.unauthorized)) this.retry();
        return;
      }
    }
    this.openSocket();
  }

  openSocket() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let url = `${proto}//${location.host}/api/v1/events?access_token=${encodeURIComponent(this.token)}`;
    if (this.since !== null) url += `&since=${this.since}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      this.mode = 'poll';
      this.connect();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.wsFailures = 0;
      this.retries = 0;
      this.onStatus('live');
    };
    ws.onmessage = (m) => {
      let event;
      try {
        event = JSON.parse(m.data);
      } catch {
        return;
      }
      this.deliver(event);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === 4401) {
        this.stopped = true;
        this.onUnauthorized();
        return;
      }
      if (!opened) {
        this.wsFailures += 1;
        if (this.wsFailures >= WS_FAILURES_BEFORE_POLL) {
          // WebSockets do not get through (a proxy, or the token is bad:
          // polling tells which).
          this.mode = 'poll';
          this.retries = 0;
          this.connect();
          return;
        }
      }
      this.retry();
    };
  }

  async pollLoop() {
    while (!this.stopped && this.mode === 'poll') {
      try {
        const batch = await this.fetchBatch(POLL_SECONDS);
        if (this.stopped) return;
        this.retries = 0;
        this.onStatus('polling');
        this.handleBatch(batch);
        // (After a restarted mailbox, the next poll reads it from the start.)
      } catch (e) {
        if (this.stopped || (e && e.unauthorized)) return;
        this.retry();
        return;
      }
    }
  }

  /** One long poll; rejects on errors (with `unauthorized` set for 401). */
  async fetchBatch(timeout) {
    let url = `/api/v1/events/poll?timeout=${timeout}`;
    if (this.since !== null) url += `&since=${this.since}`;
    this.abort = new AbortController();
    const res = await fetch(url, {
      headers: { Authorization: `Bearer ${this.token}`, Accept: 'application/json' },
      signal: this.abort.signal,
      cache: 'no-store',
    });
    if (res.status === 401) {
      this.stopped = true;
      this.onUnauthorized();
      const err = new Error('unauthorized');
      err.unauthorized = true;
      throw err;
    }
    if (!res.ok) throw new Error(`poll: ${res.status}`);
    return res.json();
  }

  /**
   * Hands on the events of a poll answer. False if the mailbox started
   * again (the session was offline a while): read it again from the start.
   */
  handleBatch(batch) {
    const next = typeof batch.next === 'number' ? batch.next : null;
    if (this.since !== null && next !== null && next < this.since) {
      this.setSince(null);
      this.onReset();
      return false;
    }
    if (batch.gap) this.onReset();
    for (const e of batch.events || []) this.deliver(e);
    if (next !== null && (this.since === null || next > this.since)) this.setSince(next);
    return true;
  }

  deliver(event) {
    if (!event || typeof event !== 'object') return;
    if (event.type === 'gap') {
      // Events were lost, or the mailbox started again with lower numbers:
      // take what follows whatever its number.
      this.setSince(null);
      this.onReset();
      return;
    }
    if (typeof event.seq === 'number') {
      if (this.since !== null && event.seq <= this.since) return;
      this.setSince(event.seq);
    }
    try {
      this.onEvent(event);
    } catch (e) {
      console.error('event handler failed', event, e);
    }
  }

  setSince(seq) {
    this.since = seq;
    this.onSeq(seq);
  }
}
