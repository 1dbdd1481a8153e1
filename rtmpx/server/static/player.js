// rtmpx live fMP4 player: the server's /{app}/{name}.mp4 over a WebSocket,
// played through Media Source Extensions.
//
// Protocol (rtmpx.server.webhls): a TEXT message {"mime", "codecs"}, then a
// BINARY init segment (ftyp+moov), then one BINARY message per CMAF part
// (moof+mdat), the first at a keyframe.  A new publisher or codec brings a
// new TEXT message and init segment, with a timeline starting again at 0.
// The server closes the socket normally when the stream ends.
'use strict';

/** Seconds of buffer ahead of the playhead beyond which we jump to the edge. */
const MAX_AHEAD = 1.5;
/** Where a jump lands: this far behind the newest buffered media. */
const EDGE_GAP = 0.3;
/** Buffered media older than this (seconds behind the playhead) is removed... */
const KEEP_BEHIND = 20;
/** ...down to this much. */
const TRIM_TO = 10;
/** Reconnection delays (seconds), the last repeated. */
const BACKOFF = [0.5, 1, 2, 4, 8];
/** How often a stream not live is looked for again (ms). */
const LIVE_CHECK_MS = 500;
/**
 * Catch-up: the buffer left just before each part arrives (its low-water mark)
 * is kept between these (seconds) by playing at CATCH_UP_RATE while above.
 */
const LOW_WATER_MAX = 0.35;
const LOW_WATER_MIN = 0.15;
const CATCH_UP_RATE = 1.08;
/** Parts (~0.5 s each) over which the low-water mark is taken. */
const LOW_WATER_PARTS = 4;
/** Binary messages waiting for the SourceBuffer beyond which we start over. */
const MAX_QUEUE = 120;

const CODEC_NAMES = [
  [/^(avc1|avc3)\b/, 'H.264'], [/^(hvc1|hev1)\b/, 'HEVC'], [/^av01\b/, 'AV1'],
  [/^vp09\b/, 'VP9'], [/^vp08\b/, 'VP8'], [/^mp4a\.40\b/, 'AAC'], [/^mp4a\.6b\b/, 'MP3'],
  [/^opus$/i, 'Opus'], [/^flac$/i, 'FLAC'], [/^ac-3$/, 'AC-3'], [/^ec-3$/, 'E-AC-3'],
];

/** A codec string's everyday name ("hvc1.1.6.L93.B0" -> "HEVC"), or ''. */
export function codecName(codec) {
  for (const [pattern, name] of CODEC_NAMES) {
    if (pattern.test(codec)) return name;
  }
  return '';
}

function mediaSourceClass() {
  // Safari on iOS has only ManagedMediaSource
  return window.MediaSource || window.ManagedMediaSource || null;
}

/** The codecs of `codecs` ("a,b") this browser cannot play through MSE. */
export function unsupportedCodecs(codecs) {
  const MS = mediaSourceClass();
  const list = codecs.split(',').map((c) => c.trim()).filter(Boolean);
  if (!MS) return list;
  return list.filter((c) => !MS.isTypeSupported(`video/mp4; codecs="${c}"`));
}

export class LivePlayer {
  /**
   * @param {HTMLVideoElement} video
   * @param {string} url  ws(s)://host/app/name.mp4
   * @param {{isLive?: () => boolean, onChange?: (player: LivePlayer) => void}} options
   *   isLive: whether the stream is still published (asked before reconnecting)
   *   onChange: called on every change of state or message
   */
  constructor(video, url, options = {}) {
    this.video = video;
    this.url = url;
    this.isLive = options.isLive || (() => true);
    this.onChange = options.onChange || (() => {});
    // idle | waiting (not live) | connecting | playing | ended | error | unsupported | stopped
    this.state = 'idle';
    this.message = '';
    this.history = [];       // the last states, oldest first
    this.codecs = '';
    this.mime = '';
    this.bytes = 0;          // binary bytes received
    this.parts = 0;          // media parts received (not init segments)
    this.reconnects = 0;
    this.evictions = 0;
    this.liveJumps = 0;
    this.ws = null;
    this.mediaSource = null;
    this.objectUrl = '';
    this.sourceBuffer = null;
    this.queue = [];         // operations waiting for the SourceBuffer, in order
    this.started = false;    // playback started on this MediaSource
    this.lowWater = [];      // buffer ahead just before each of the last appends
    this.expectInit = false; // the next binary message is an init segment
    this.attempt = 0;
    this.retryTimer = 0;
    this.tick = 0;
    this.stopped = false;
  }

  /** Connect and play (once); wait first if the stream is not live. */
  start() {
    this.tick = window.setInterval(() => this.keepLive(), 250);
    if (this.isLive()) {
      this.connect();
    } else {
      this.setState('waiting', 'waiting for a publisher');
      this.attempt = 0;
      this.scheduleRetry();
    }
    return this;
  }

  /** Close the socket and free the media. */
  stop() {
    this.stopped = true;
    window.clearInterval(this.tick);
    window.clearTimeout(this.retryTimer);
    this.closeSocket();
    this.detachMedia();
    this.setState('stopped', '');
  }

  /** What the page and tests may read. */
  info() {
    const video = this.video;
    const ranges = video.buffered;
    const end = ranges.length ? ranges.end(ranges.length - 1) : 0;
    const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    return {
      state: this.state, message: this.message, codecs: this.codecs, url: this.url,
      history: this.history.slice(),
      bytes: this.bytes, parts: this.parts, reconnects: this.reconnects,
      evictions: this.evictions, liveJumps: this.liveJumps,
      currentTime: video.currentTime,
      bufferAhead: ranges.length ? Math.max(0, end - video.currentTime) : 0,
      buffered: ranges.length ? end - ranges.start(0) : 0,
      totalFrames: quality ? quality.totalVideoFrames : 0,
      droppedFrames: quality ? quality.droppedVideoFrames : 0,
      paused: video.paused,
    };
  }

  setState(state, message) {
    if (this.state === state && this.message === message) return;
    this.state = state;
    this.message = message;
    this.history.push(state);
    if (this.history.length > 50) this.history.shift();
    this.onChange(this);
  }

  // -- the socket ------------------------------------------------------------------

  connect() {
    if (this.stopped) return;
    this.setState('connecting', '');
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.fail(`cannot open ${this.url}: ${error.message}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (event) => this.received(event.data);
    ws.onclose = (event) => this.closed(ws, event);
    this.ws = ws;
  }

  closeSocket() {
    if (this.ws) {
      this.ws.onmessage = this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
  }

  received(data) {
    if (typeof data === 'string') {
      this.header(data);
      return;
    }
    this.bytes += data.byteLength;
    if (!this.mediaSource) return;  // no header yet, or unsupported: ignore
    if (this.expectInit) {
      this.expectInit = false;     // the init segment that follows every header
    } else {
      this.parts += 1;
    }
    if (this.queue.length > MAX_QUEUE) {
      // the page cannot keep up (a hidden tab): start again at a keyframe
      this.restart('too far behind');
      return;
    }
    this.queue.push({ kind: 'append', data });
    this.pump();
  }

  /** A TEXT message: the MIME type of what follows (a new init segment comes next). */
  header(text) {
    let head;
    try {
      head = JSON.parse(text);
    } catch {
      this.fail('the server sent a malformed header');
      return;
    }
    const mime = typeof head.mime === 'string' ? head.mime : '';
    const codecs = typeof head.codecs === 'string' ? head.codecs : '';
    const MS = mediaSourceClass();
    if (!MS || !MS.isTypeSupported(mime)) {
      this.unsupported(codecs || mime);
      return;
    }
    this.codecs = codecs;
    this.mime = mime;
    this.attempt = 0;
    this.expectInit = true;
    if (!this.mediaSource) {
      this.attachMedia(MS);
    } else {
      // a new publisher or codec: drop the old media, switch, and take the new init
      this.queue.push({ kind: 'reset', mime });
      this.pump();
    }
    this.onChange(this);
  }

  unsupported(codecs) {
    const names = unsupportedCodecs(codecs);
    const what = (names.length ? names : [codecs]).map((c) => {
      const name = codecName(c);
      return name ? `${c} (${name})` : c;
    }).join(' and ');
    this.codecs = codecs;
    this.closeSocket();
    this.detachMedia();
    // no reconnection: it would fail the same way
    this.stopped = true;
    window.clearInterval(this.tick);
    this.setState('unsupported',
      `This browser cannot decode ${what} through Media Source Extensions.`);
  }

  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.stopped || this.state === 'error') return;
    const clean = event.code === 1000;
    this.setState('ended', clean ? 'the stream ended' : `connection closed (${event.code})`);
    this.scheduleRetry();
  }

  /**
   * Connect again after a back-off delay (it grows with each failed attempt),
   * once the stream is listed live: that is checked every LIVE_CHECK_MS
   * (no request: the page's /stats polls tell).
   */
  scheduleRetry() {
    const delay = BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)];
    this.attempt += 1;
    const retry = () => {
      if (this.stopped) return;
      if (!this.isLive()) {
        this.retryTimer = window.setTimeout(retry, LIVE_CHECK_MS);
        return;
      }
      if (this.history.includes('connecting')) this.reconnects += 1;
      this.connect();
    };
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(retry, delay * 1000);
  }

  restart(why) {
    this.closeSocket();
    this.detachMedia();
    this.setState('connecting', why);
    this.connect();
  }

  fail(message) {
    this.closeSocket();
    this.setState('error', message);
  }

  // -- Media Source Extensions -----------------------------------------------------

  attachMedia(MS) {
    const mediaSource = new MS();
    this.mediaSource = mediaSource;
    this.queue = [];
    this.started = false;
    this.lowWater = [];
    if (window.ManagedMediaSource && MS === window.ManagedMediaSource) {
      this.video.disableRemotePlayback = true;
    }
    mediaSource.addEventListener('sourceopen', () => {
      if (this.mediaSource !== mediaSource) return;
      try {
        const sb = mediaSource.addSourceBuffer(this.mime);
        sb.mode = 'segments';
        sb.addEventListener('updateend', () => this.updated());
        sb.addEventListener('error', () => this.fail('the browser could not decode the stream'));
        this.sourceBuffer = sb;
      } catch (error) {
        this.fail(`cannot play ${this.mime}: ${error.message}`);
        return;
      }
      this.pump();
    }, { once: true });
    this.objectUrl = URL.createObjectURL(mediaSource);
    this.video.src = this.objectUrl;
  }

  detachMedia() {
    this.sourceBuffer = null;
    this.mediaSource = null;
    this.queue = [];
    if (this.objectUrl) {
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = '';
      this.video.removeAttribute('src');
      this.video.load();
    }
  }

  /** Run the next queued operation if the SourceBuffer is idle (appends are async). */
  pump() {
    const sb = this.sourceBuffer;
    if (!sb || sb.updating || !this.queue.length || this.mediaSource.readyState !== 'open') return;
    const op = this.queue[0];
    try {
      if (op.kind === 'reset') {
        if (op.removing) {
          // the old media is gone: switch codecs (or start over without changeType)
          this.queue.shift();
          if (typeof sb.changeType === 'function') {
            sb.changeType(op.mime);
            this.started = false;
            this.lowWater = [];
            this.pump();
          } else {
            const rest = this.queue;
            this.detachMedia();
            this.attachMedia(mediaSourceClass());
            this.queue = rest;
          }
          return;
        }
        op.removing = true;
        if (sb.buffered.length) {
          sb.remove(0, Infinity);  // continues in updated()
        } else {
          this.pump();
        }
        return;
      }
      this.noteLowWater();
      sb.appendBuffer(op.data);
      this.queue.shift();
    } catch (error) {
      if (error.name === 'QuotaExceededError') {
        // retried after the removal; with nothing to remove, start over at a keyframe
        if (!this.evict(true)) this.restart('the browser\'s media buffer is full');
      } else {
        this.fail(`cannot append media: ${error.message}`);
      }
    }
  }

  /** After every append or removal: start playing, bound memory, keep the edge, go on. */
  updated() {
    const sb = this.sourceBuffer;
    if (!sb) return;
    if (!this.started && sb.buffered.length) {
      this.started = true;
      this.video.currentTime = sb.buffered.start(0);
      this.video.play().catch(() => {});  // autoplay may need the user: controls remain
    }
    if (this.evict(false)) return;
    this.keepLive();
    this.pump();
  }

  /**
   * Remove media long behind the playhead (all but the last seconds when the
   * browser's quota is hit).  True when a removal runs (updated() follows).
   */
  evict(quota) {
    const sb = this.sourceBuffer;
    if (!sb || sb.updating || !sb.buffered.length) return false;
    const now = this.video.currentTime;
    const start = sb.buffered.start(0);
    const keep = quota ? 2 : TRIM_TO;
    if (!quota && now - start <= KEEP_BEHIND) return false;
    const until = now - keep;
    if (until <= start) return false;
    this.evictions += 1;
    sb.remove(start, until);
    return true;
  }

  /** Remember how much was buffered ahead just before an append. */
  noteLowWater() {
    const video = this.video;
    if (!this.started || video.paused || !video.buffered.length) return;
    const ahead = video.buffered.end(video.buffered.length - 1) - video.currentTime;
    this.lowWater.push(ahead);
    if (this.lowWater.length > LOW_WATER_PARTS) this.lowWater.shift();
  }

  /**
   * Play slightly faster while the buffer never ran low lately: media comes
   * in parts, so the buffer ahead swings by a part's duration; its minimum
   * over the last parts says how much of it is spare delay.
   */
  catchUp() {
    const video = this.video;
    const low = this.lowWater.length >= 2 ? Math.min(...this.lowWater) : 0;
    if (low > LOW_WATER_MAX) {
      video.playbackRate = CATCH_UP_RATE;
    } else if (low < LOW_WATER_MIN) {
      video.playbackRate = 1;
    }
  }

  /** Stay near the newest media: jump when far behind, play slightly faster when a bit behind. */
  keepLive() {
    const video = this.video;
    const sb = this.sourceBuffer;
    if (!sb || !this.started || !video.buffered.length) return;
    if (video.paused && this.state === 'playing') return;  // paused by the user
    const last = video.buffered.length - 1;
    const start = video.buffered.start(last);
    const end = video.buffered.end(last);
    const now = video.currentTime;
    if (now < start || now > end + 0.5 || end - now > MAX_AHEAD) {
      video.currentTime = Math.max(start, end - EDGE_GAP);
      this.liveJumps += 1;
      this.lowWater = [];
    }
    this.catchUp();
    if (video.paused && !video.ended && this.state === 'connecting') {
      video.play().catch(() => {});
    }
    if (this.state !== 'playing' && !video.paused && video.readyState >= 2
        && this.ws) {
      this.setState('playing', '');
    }
  }
}
