// rtmpx dashboard: polls /stats every second and draws the streams; a
// stream's preview plays its live fMP4 through player.js.
//
// Everything in /stats is untrusted (stream names, peers, metadata come from
// publishers): the DOM is built with textContent only, never innerHTML.
'use strict';

import { LivePlayer, codecName } from './player.js';

const POLL_MS = 1000;
const FETCH_TIMEOUT_MS = 3000;

const $ = (id) => document.getElementById(id);

const state = {
  stats: null,          // the last answer of /stats
  reachable: true,
  previous: new Map(),  // stream key -> {bytes, t}: for bitrates
  totals: null,         // {bytesIn, bytesOut, t}: for the totals' rates
  rates: new Map(),     // stream key -> kbit/s
  expanded: new Set(),  // stream keys whose player list is open
  selected: null,       // the previewed stream key
  player: null,
};

// -- formatting ---------------------------------------------------------------------

function num(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function text(value) {
  return typeof value === 'string' ? value : '';
}

function formatBytes(n) {
  n = num(n);
  if (n === null) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n.toFixed(i && n < 100 ? 1 : 0)} ${units[i]}`;
}

function formatDuration(seconds) {
  seconds = num(seconds);
  if (seconds === null) return '–';
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (v) => String(v).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

function formatRate(kbits) {
  if (kbits === null || kbits === undefined) return '–';
  return kbits >= 10000 ? `${(kbits / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbits)} kbit/s`;
}

/** "H.264 640×360 @ 25" from the stats' video (or, failing that, onMetaData's numbers). */
function describeVideo(stream) {
  const video = stream.video && typeof stream.video === 'object' ? stream.video : null;
  const meta = stream.metadata && typeof stream.metadata === 'object' ? stream.metadata : {};
  if (!video && num(meta.width) === null) return '';
  const codec = video ? text(video.codec) : '';
  const width = num(video ? video.width : meta.width);
  const height = num(video ? video.height : meta.height);
  const fps = num(video ? video.fps : meta.framerate);
  const parts = [codec ? (codecLabel(codec)) : ''];
  if (width && height) parts.push(`${width}×${height}`);
  if (fps) parts.push(`@ ${Math.round(fps * 100) / 100}`);
  return parts.filter(Boolean).join(' ');
}

function describeAudio(stream) {
  const audio = stream.audio && typeof stream.audio === 'object' ? stream.audio : null;
  if (!audio) return '';
  const parts = [codecLabel(text(audio.codec))];
  const rate = num(audio.sample_rate);
  if (rate) parts.push(`${rate / 1000} kHz`);
  const channels = num(audio.channels);
  if (channels) parts.push(channels === 1 ? 'mono' : channels === 2 ? 'stereo' : `${channels} ch`);
  return parts.filter(Boolean).join(' ');
}

/** The stats' codec names, as people know them (a Map: no inherited keys). */
const CODECS = new Map([['avc', 'H.264'], ['hevc', 'HEVC'], ['av1', 'AV1'], ['vp9', 'VP9'],
  ['vp8', 'VP8'], ['aac', 'AAC'], ['opus', 'Opus'], ['mp3', 'MP3'], ['flac', 'FLAC'],
  ['ac3', 'AC-3'], ['eac3', 'E-AC-3']]);

/** "avc" -> "H.264" (known names), else the codec as sent. */
function codecLabel(codec) {
  return CODECS.get(codec.toLowerCase()) || codecName(codec) || codec;
}

/** The stats' streams that are objects (anything else is skipped). */
function listedStreams(stats) {
  const streams = stats && Array.isArray(stats.streams) ? stats.streams : [];
  return streams.filter((s) => s && typeof s === 'object');
}

function streamKey(stream) {
  const key = text(stream.key);
  return key || `${text(stream.app)}/${text(stream.name)}`;
}

/** app and name of a key "app/name" (the name may hold further slashes). */
function splitKey(key) {
  const i = key.indexOf('/');
  return i < 0 ? null : { app: key.slice(0, i), name: key.slice(i + 1) };
}

function streamPath(key) {
  const parts = splitKey(key);
  if (!parts) return null;
  return `/${encodeURIComponent(parts.app)}/${encodeURIComponent(parts.name)}`;
}

// -- DOM helpers ----------------------------------------------------------------------

/** An element with a class and text (textContent: never parsed as HTML). */
function el(tag, className, content) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (content !== undefined && content !== null) node.textContent = String(content);
  return node;
}

function cell(content, className) {
  return el('td', className, content === '' ? '–' : content);
}

// -- polling ---------------------------------------------------------------------------

/** One request for /stats (the page updates, or says the server is unreachable). */
async function refresh() {
  try {
    const response = await fetch('/stats', {
      cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const stats = await response.json();
    if (!stats || typeof stats !== 'object') throw new Error('not a JSON object');
    state.reachable = true;
    update(stats, performance.now() / 1000);
  } catch (error) {
    state.reachable = false;
    showStatus(`server unreachable (${error.name === 'TimeoutError' ? 'timeout' : error.message})`);
  }
}

/** Poll every POLL_MS after the previous answer (never two requests at once). */
async function poll() {
  await refresh();
  window.setTimeout(poll, POLL_MS);
}

function update(stats, now) {
  state.stats = stats;
  const streams = listedStreams(stats);
  computeRates(streams, now);
  renderTotals(stats, now);
  renderStreams(streams);
  showStatus('');
}

/** Bitrates from successive polls: delta of publisher bytes over delta t. */
function computeRates(streams, now) {
  const seen = new Map();
  for (const stream of streams) {
    const key = streamKey(stream);
    const bytes = stream.publisher ? num(stream.publisher.bytes) : null;
    if (bytes === null) continue;
    const before = state.previous.get(key);
    if (before && bytes >= before.bytes && now > before.t) {
      state.rates.set(key, ((bytes - before.bytes) * 8) / (now - before.t) / 1000);
    } else if (!before || bytes < before.bytes) {
      state.rates.delete(key);  // first sight, or a new publisher
    }
    seen.set(key, { bytes, t: now });
  }
  state.previous = seen;
  for (const key of state.rates.keys()) {
    if (!seen.has(key)) state.rates.delete(key);
  }
}

function showStatus(problem) {
  const status = $('status');
  status.textContent = problem || 'live · polling every second';
  status.classList.toggle('bad', Boolean(problem));
  document.body.classList.toggle('unreachable', Boolean(problem));
}

// -- totals ----------------------------------------------------------------------------

function renderTotals(stats, now) {
  $('t-uptime').textContent = formatDuration(stats.uptime);
  $('t-connections').textContent = num(stats.connections) ?? '–';
  $('t-publishers').textContent = num(stats.publishers) ?? '–';
  $('t-players').textContent = num(stats.players) ?? '–';
  $('t-in').textContent = formatBytes(stats.bytes_in);
  $('t-out').textContent = formatBytes(stats.bytes_out);
  $('t-dropped').textContent = num(stats.dropped) ?? '–';
  const bytesIn = num(stats.bytes_in);
  const bytesOut = num(stats.bytes_out);
  const before = state.totals;
  if (before && now > before.t && bytesIn !== null && bytesOut !== null) {
    const rate = (a, b) => (a >= b ? formatRate(((a - b) * 8) / (now - before.t) / 1000) : '');
    $('t-in-rate').textContent = rate(bytesIn, before.bytesIn);
    $('t-out-rate').textContent = rate(bytesOut, before.bytesOut);
  }
  state.totals = { bytesIn, bytesOut, t: now };
  $('t-dropped').closest('.card').classList.toggle('warn', (num(stats.dropped) || 0) > 0);
}

// -- the streams table -------------------------------------------------------------------

function renderStreams(streams) {
  const body = $('streams').tBodies[0];
  // keep keyboard focus across the redraw
  const focused = document.activeElement && body.contains(document.activeElement)
    ? document.activeElement.dataset.focus : null;
  const rows = [];
  for (const stream of streams) {
    const key = streamKey(stream);
    rows.push(streamRow(stream, key));
    if (state.expanded.has(key)) rows.push(playersRow(stream));
  }
  body.replaceChildren(...rows);
  $('empty').hidden = streams.length > 0;
  $('streams').hidden = streams.length === 0;
  if (focused) {
    const again = [...body.querySelectorAll('[data-focus]')].find((n) => n.dataset.focus === focused);
    if (again) again.focus();
  }
}

function streamRow(stream, key) {
  const row = el('tr', stream.live ? 'live' : 'idle');
  if (key === state.selected) row.classList.add('selected');

  const name = el('td', 'key');
  const open = el('button', 'link', key);
  open.type = 'button';
  open.dataset.focus = `open:${key}`;
  open.title = 'Preview this stream';
  open.addEventListener('click', () => select(key));
  name.append(el('span', stream.live ? 'badge on' : 'badge off', stream.live ? 'live' : 'idle'),
    open);
  if (stream.publisher && stream.publisher.paused) name.append(el('span', 'badge off', 'paused'));
  row.append(name);

  row.append(cell(describeVideo(stream)), cell(describeAudio(stream)));
  const rate = state.rates.get(key);
  row.append(cell(formatRate(rate), 'num'));
  const publisher = stream.publisher && typeof stream.publisher === 'object' ? stream.publisher : null;
  row.append(cell(publisher ? text(publisher.peer) : '', 'mono'));
  row.append(cell(publisher ? formatDuration(publisher.seconds) : '', 'num'));

  const players = Array.isArray(stream.players) ? stream.players : [];
  const playersCell = el('td');
  if (players.length) {
    const toggle = el('button', 'expander', `${state.expanded.has(key) ? '▾' : '▸'} ${players.length}`);
    toggle.type = 'button';
    toggle.dataset.focus = `players:${key}`;
    toggle.setAttribute('aria-expanded', String(state.expanded.has(key)));
    toggle.title = 'Show the players';
    toggle.addEventListener('click', () => toggleExpanded(key));
    playersCell.append(toggle);
  } else {
    playersCell.textContent = '0';
  }
  // outputs that are not one player: the LL-HLS packager, with its segments
  const outputs = Array.isArray(stream.outputs) ? stream.outputs : [];
  for (const output of outputs) {
    if (!output || output.kind !== 'll-hls') continue;
    const hls = el('span', 'badge off', 'LL-HLS');
    hls.title = `LL-HLS packaged: ${num(output.segments) ?? 0} segments, ${formatBytes(output.bytes)}`;
    playersCell.append(' ', hls);
  }
  row.append(playersCell);

  const recordings = Array.isArray(stream.recordings) ? stream.recordings : [];
  const recCell = el('td', 'recordings');
  for (const recording of recordings) {
    // the file's name, the whole path on hover
    const path = text(recording && recording.path);
    const line = el('div', 'mono', path.slice(path.lastIndexOf('/') + 1) || path);
    line.title = path;
    recCell.append(line);
  }
  if (!recordings.length) recCell.textContent = '–';
  row.append(recCell);
  return row;
}

function playersRow(stream) {
  const row = el('tr', 'details');
  const td = el('td');
  td.colSpan = 8;
  const table = el('table', 'players');
  const head = el('tr');
  for (const title of ['Peer', 'Protocol', 'Lag', 'Queued', 'Sent', 'Drops']) {
    head.append(el('th', title === 'Peer' || title === 'Protocol' ? '' : 'num', title));
  }
  table.append(el('thead'));
  table.tHead.append(head);
  const body = el('tbody');
  for (const player of Array.isArray(stream.players) ? stream.players : []) {
    if (!player || typeof player !== 'object') continue;
    const lag = num(player.behind_seconds);
    const drops = num(player.dropped);
    const line = el('tr');
    line.append(cell(text(player.peer), 'mono'), cell(text(player.protocol)),
      cell(lag === null ? '' : `${lag.toFixed(2)} s`, lag !== null && lag > 2 ? 'num warn' : 'num'),
      cell(formatBytes(player.queued_bytes), 'num'), cell(formatBytes(player.bytes), 'num'),
      cell(drops ?? '', drops ? 'num warn' : 'num'));
    body.append(line);
  }
  table.append(body);
  td.append(table);
  row.append(td);
  return row;
}

function toggleExpanded(key) {
  if (state.expanded.has(key)) state.expanded.delete(key);
  else state.expanded.add(key);
  if (state.stats) renderStreams(listedStreams(state.stats));
}

// -- the preview --------------------------------------------------------------------------

function select(key, { push = true } = {}) {
  if (push) {
    // ?stream=app/name, as people type it (URLSearchParams would write %2F)
    const url = new URL(window.location.href);
    url.search = `?stream=${encodeURIComponent(key).replace(/%2F/gi, '/')}`;
    window.history.pushState({ stream: key }, '', url);
  }
  openPreview(key);
  $('preview').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  if (state.stats) renderStreams(listedStreams(state.stats));
}

function closePreview({ push = true } = {}) {
  if (state.player) state.player.stop();
  state.player = null;
  window.rtmpxPlayer = null;
  state.selected = null;
  $('preview').hidden = true;
  if (push) {
    const url = new URL(window.location.href);
    url.searchParams.delete('stream');
    window.history.pushState({}, '', url);
  }
  if (state.stats) renderStreams(listedStreams(state.stats));
}

function openPreview(key) {
  const path = streamPath(key);
  if (!path) return;
  if (state.player) state.player.stop();
  state.selected = key;
  $('preview').hidden = false;
  $('preview-title').textContent = key;
  renderUrls(key, path);
  const wsOrigin = `${window.location.protocol === 'https:' ? 'wss' : 'ws'}://${window.location.host}`;
  const player = new LivePlayer($('video'), `${wsOrigin}${path}.mp4`, {
    isLive: () => isLive(key),
    onChange: renderPlayer,
  });
  state.player = player;
  window.rtmpxPlayer = player;  // for tests and the console
  player.start();
  renderPlayer(player);
}

/** Whether /stats lists the stream as published (true when /stats cannot tell). */
function isLive(key) {
  if (!state.stats || !state.reachable) return true;
  const streams = listedStreams(state.stats);
  return streams.some((s) => streamKey(s) === key && s.live);
}

function renderUrls(key, path) {
  const { host, hostname, protocol } = window.location;
  const ws = protocol === 'https:' ? 'wss' : 'ws';
  const parts = splitKey(key);
  const entries = [
    ['HTTP-FLV', `${protocol}//${host}${path}.flv`],
    ['WebSocket-FLV', `${ws}://${host}${path}.flv`],
    ['LL-HLS', `${protocol}//${host}${path}.m3u8`],
    ['fMP4 (WebSocket)', `${ws}://${host}${path}.mp4`],
    ['RTMP', `rtmp://${hostname}:${rtmpPort()}/${parts.app}/${parts.name}`],
  ];
  const list = $('urls');
  list.replaceChildren();
  for (const [label, url] of entries) {
    const value = el('dd');
    value.append(el('code', '', url));
    if (navigator.clipboard) {
      const copy = el('button', 'ghost copy', 'copy');
      copy.type = 'button';
      copy.addEventListener('click', () => navigator.clipboard.writeText(url).catch(() => {}));
      value.append(copy);
    }
    list.append(el('dt', '', label), value);
  }
  if (!Number.isInteger(state.stats?.rtmp_port)) {
    list.append(el('dd', 'note', 'RTMP: 1935 is the default port; the server may listen elsewhere.'));
  }
}

/** The server's RTMP port, as /stats says (1935, the default, when it does not). */
function rtmpPort() {
  const port = state.stats?.rtmp_port;
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : 1935;
}

function renderPlayer(player) {
  if (player !== state.player) return;
  const pill = $('player-state');
  pill.textContent = player.state;
  pill.className = `pill ${player.state}`;
  const message = $('player-message');
  message.textContent = player.message;
  message.hidden = !player.message || player.state === 'playing';
  message.classList.toggle('error', player.state === 'error' || player.state === 'unsupported');
  const info = player.info();
  const rows = [
    ['Codecs', info.codecs || '–'],
    ['Buffer ahead', `${info.bufferAhead.toFixed(2)} s`],
    ['Frames', `${info.totalFrames} (${info.droppedFrames} dropped)`],
    ['Received', `${formatBytes(info.bytes)} · ${info.parts} parts`],
    ['Reconnects', String(info.reconnects)],
  ];
  const list = $('player-info');
  list.replaceChildren();
  for (const [label, value] of rows) list.append(el('dt', '', label), el('dd', '', value));
}

// -- start ------------------------------------------------------------------------------------

function fromLocation() {
  const key = new URLSearchParams(window.location.search).get('stream');
  if (key && splitKey(key)) {
    if (key !== state.selected) openPreview(key);
  } else if (state.selected) {
    closePreview({ push: false });
  }
}

async function main() {
  for (const node of document.querySelectorAll('.host')) node.textContent = window.location.hostname;
  $('preview-close').addEventListener('click', () => closePreview());
  window.addEventListener('popstate', fromLocation);
  // the player's numbers (buffer, frames) move between its events
  window.setInterval(() => { if (state.player) renderPlayer(state.player); }, 500);
  await refresh();  // first: the preview knows whether its stream is live
  fromLocation();
  window.setTimeout(poll, POLL_MS);
}

main();
