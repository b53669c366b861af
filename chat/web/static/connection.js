// Connection is the chat WebSocket (chat/PROTOCOL.md): hello, subscribe
// with the last seq held per room, app-level ping, reconnection with
// exponential backoff and jitter (1 s ... 30 s), frames queued while
// offline.
export class Connection {
  // opts.rooms(): {roomId: lastSeq} to subscribe after each (re)connection;
  // opts.onEvent(frame); opts.onState('connecting'|'open'|'offline');
  // opts.onResync(roomId).
  constructor(opts) {
    this.opts = opts;
    this.ws = null;
    this.ready = false;
    this.queue = [];
    this.backoff = 1000;
    this.closed = false;
    this.heartbeat = null;
    this.retry = null;
  }

  open() {
    if (this.closed) return;
    this.opts.onState('connecting');
    const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/chat/ws`;
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'hello', v: 1 }));
    ws.onmessage = (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      this.handle(f);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ready = false;
      this.ws = null;
      clearInterval(this.heartbeat);
      if (this.closed) return;
      this.opts.onState('offline');
      if (ev.code === 1008 && ev.reason === 'session ended') { location.reload(); return; }
      // 1 s, 2 s, 4 s ... 30 s, with jitter so that a restarted server is
      // not hit by every tab at once.
      const delay = this.backoff * (0.5 + Math.random() / 2);
      this.backoff = Math.min(this.backoff * 2, 30000);
      this.retry = setTimeout(() => this.open(), delay);
    };
  }

  handle(f) {
    switch (f.type) {
      case 'welcome': {
        this.ready = true;
        this.backoff = 1000;
        this.opts.onState('open');
        const every = Math.max(5, Number(f.heartbeat) || 25) * 1000;
        clearInterval(this.heartbeat);
        this.heartbeat = setInterval(() => this.raw({ type: 'ping' }), every);
        this.opts.onEvent(f);
        const rooms = this.opts.rooms();
        if (Object.keys(rooms).length) this.raw({ type: 'subscribe', rooms });
        const q = this.queue;
        this.queue = [];
        for (const m of q) if (m.type !== 'send') this.raw(m); // sends are replayed by the app with their clientId
        return;
      }
      case 'resync':
        this.opts.onResync(f.room);
        return;
      case 'pong':
      case 'subscribed':
        return;
      default:
        this.opts.onEvent(f);
    }
  }

  raw(f) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(f));
  }

  // send delivers f now or after the next welcome; typing is dropped when
  // offline.
  send(f) {
    if (this.ready) { this.raw(f); return; }
    if (f.type !== 'typing' && f.type !== 'send') this.queue.push(f);
  }

  subscribe(rooms) { this.send({ type: 'subscribe', rooms }); }

  close() {
    this.closed = true;
    clearInterval(this.heartbeat);
    clearTimeout(this.retry);
    if (this.ws) this.ws.close(1000);
  }
}
