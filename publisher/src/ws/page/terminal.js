// The mdfh web terminal: one WebSocket to /ws, a depth ladder, a trades tape and pipeline stats.
// Prices arrive as integers in 1/10000 dollars. The ladder rows carry data-side ("bid"/"ask") and
// data-level (1 = best), and #ladder carries data-feed-seq, updated on every book message.
"use strict";

const PRICE_SCALE = 10000;
const TAPE_ROWS = 50;
const CHART_POINTS = 120;

const state = {
  socket: null,
  symbol: "",
  depth: 10,
  bids: new Map(), // price -> [shares, orders]
  asks: new Map(),
  rates: [],
  renderQueued: false,
};

const $ = (id) => document.getElementById(id);

function formatPrice(price) {
  return (price / PRICE_SCALE).toFixed(4);
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const token = new URLSearchParams(location.search).get("token");
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  return scheme + "//" + location.host + "/ws" + query;
}

function connect() {
  const socket = new WebSocket(socketUrl());
  state.socket = socket;
  socket.onopen = () => {
    setConnection("open");
    if (state.symbol) subscribe(state.symbol);
  };
  socket.onclose = (event) => {
    setConnection("closed", "closed (" + event.code + (event.reason ? ": " + event.reason : "") + ")");
    setTimeout(connect, 2000);
  };
  socket.onmessage = (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (error) {
      return;
    }
    handle(message);
  };
}

function setConnection(name, text) {
  const node = $("connection");
  node.dataset.state = name;
  node.textContent = text || name;
}

function send(request) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(JSON.stringify(request));
  }
}

function subscribe(symbol) {
  send({ op: "subscribe", symbol: symbol, depth: state.depth });
}

function handle(message) {
  switch (message.type) {
    case "directory": return showDirectory(message.symbols);
    case "snapshot": return onSnapshot(message);
    case "level": return onLevel(message);
    case "bbo": return setFeedSeq(message.feed_seq);
    case "trade": return onTrade(message);
    case "status": return onStatus(message);
    case "stats": return onStats(message.stats);
    case "reset": return onReset();
    case "quality": return setQuality(message);
    case "error": return setConnection("open", "error: " + message.message);
  }
}

function showDirectory(symbols) {
  const select = $("symbol");
  const current = state.symbol;
  select.textContent = "";
  const placeholder = new Option("(pick an instrument)", "");
  select.add(placeholder);
  for (const symbol of symbols) select.add(new Option(symbol, symbol));
  select.value = symbols.includes(current) ? current : "";
}

function onSnapshot(message) {
  if (message.symbol !== state.symbol) return;
  state.bids = new Map(message.bids.map(([p, s, o]) => [p, [s, o]]));
  state.asks = new Map(message.asks.map(([p, s, o]) => [p, [s, o]]));
  setStatus(message.status, message.trading_state);
  setFeedSeq(message.feed_seq);
  queueRender();
}

function onLevel(message) {
  if (message.symbol !== state.symbol) return;
  const side = message.side === "bid" ? state.bids : state.asks;
  if (message.shares === 0) side.delete(message.price);
  else side.set(message.price, [message.shares, message.orders]);
  setFeedSeq(message.feed_seq);
  queueRender();
}

function onTrade(message) {
  if (message.symbol !== state.symbol) return;
  setFeedSeq(message.feed_seq);
  const row = document.createElement("tr");
  const cells = [new Date().toLocaleTimeString(), formatPrice(message.price), message.shares, message.resting_side || message.trade_kind];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.appendChild(cell);
  }
  const body = document.querySelector("#tape tbody");
  body.insertBefore(row, body.firstChild);
  while (body.rows.length > TAPE_ROWS) body.deleteRow(-1);
}

function onStatus(message) {
  if (message.symbol !== state.symbol) return;
  setStatus(message.status, message.trading_state);
  setFeedSeq(message.feed_seq);
}

function onReset() {
  state.bids.clear();
  state.asks.clear();
  queueRender();
}

function setStatus(status, tradingState) {
  const node = $("book-status");
  node.dataset.status = status;
  node.textContent = status;
  $("trading-state").textContent = tradingState || "-";
}

// The feed-wide quality applies to every book: a book is trustworthy only when its own status is
// ok and the quality is ok or recovered.
function setQuality(message) {
  const node = $("quality");
  node.dataset.state = message.state;
  node.textContent = message.state;
  node.title = message.since ? "first missing feed sequence number: " + message.since : "feed-wide quality";
}

function setFeedSeq(seq) {
  $("ladder").dataset.feedSeq = String(seq);
  $("top").dataset.feedSeq = String(seq);
}

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderLadder();
  });
}

// Keeps at most `depth` levels per side, best first.
function bestLevels(side, ascending) {
  const prices = Array.from(side.keys()).sort((a, b) => (ascending ? a - b : b - a));
  return prices.slice(0, state.depth).map((price) => [price, side.get(price)]);
}

function renderSide(body, sideName, levels, maxShares, bestAtBottom) {
  body.textContent = "";
  const rows = levels.map(([price, [shares, orders]], index) => {
    const row = document.createElement("tr");
    row.dataset.side = sideName;
    row.dataset.level = String(index + 1);
    row.dataset.price = String(price);
    const cells = [["orders", orders], ["size", shares], ["price", formatPrice(price)]];
    for (const [cls, text] of cells) {
      const cell = document.createElement("td");
      cell.className = cls;
      cell.textContent = text;
      row.appendChild(cell);
    }
    const barCell = document.createElement("td");
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = (maxShares > 0 ? (100 * shares) / maxShares : 0) + "%";
    barCell.appendChild(bar);
    row.appendChild(barCell);
    return row;
  });
  if (bestAtBottom) rows.reverse();
  for (const row of rows) body.appendChild(row);
}

function renderLadder() {
  const asks = bestLevels(state.asks, true);
  const bids = bestLevels(state.bids, false);
  const maxShares = Math.max(0, ...asks.map(([, [s]]) => s), ...bids.map(([, [s]]) => s));
  renderSide($("asks"), "ask", asks, maxShares, true);
  renderSide($("bids"), "bid", bids, maxShares, false);
  const bestBid = bids.length ? bids[0][0] : null;
  const bestAsk = asks.length ? asks[0][0] : null;
  $("best-bid").textContent = bestBid === null ? "-" : bids[0][1][0] + " @ " + formatPrice(bestBid);
  $("best-ask").textContent = bestAsk === null ? "-" : asks[0][1][0] + " @ " + formatPrice(bestAsk);
  $("spread").textContent = bestBid !== null && bestAsk !== null ? formatPrice(bestAsk - bestBid) : "-";
}

function formatNs(ns) {
  if (ns >= 1e6) return (ns / 1e6).toFixed(2) + "ms";
  if (ns >= 1e3) return (ns / 1e3).toFixed(1) + "us";
  return ns + "ns";
}

function onStats(stats) {
  const latency = (stats.latency_ns && stats.latency_ns.interval) || {};
  const body = document.querySelector("#latency tbody");
  body.textContent = "";
  for (const [stage, p] of Object.entries(latency)) {
    const row = document.createElement("tr");
    for (const text of [stage, formatNs(p.p50), formatNs(p.p99), formatNs(p.p999), formatNs(p.max)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    body.appendChild(row);
  }

  const counters = stats.counters || {};
  const shown = {
    "messages/s": Math.round(stats.messages_per_sec || 0),
    "gaps": counters.feed ? counters.feed.gaps : "-",
    "messages missed": counters.feed ? counters.feed.messages_missed : "-",
    "book ring waits": counters.book ? counters.book.ring_full_waits : "-",
    "subscribers": counters.publish ? counters.publish.subscribers : "-",
    "slow-consumer drops": counters.publish ? counters.publish.slow_consumer_disconnects : "-",
  };
  const list = $("counters");
  list.textContent = "";
  for (const [name, value] of Object.entries(shown)) {
    const term = document.createElement("dt");
    term.textContent = name;
    const detail = document.createElement("dd");
    detail.textContent = value;
    list.append(term, detail);
  }

  state.rates.push(stats.messages_per_sec || 0);
  if (state.rates.length > CHART_POINTS) state.rates.shift();
  drawChart();
}

function drawChart() {
  const canvas = $("chart");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const max = Math.max(1, ...state.rates);
  context.strokeStyle = "#4dabf7";
  context.beginPath();
  state.rates.forEach((rate, index) => {
    const x = (index / (CHART_POINTS - 1)) * width;
    const y = height - (rate / max) * (height - 14);
    if (index === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.stroke();
  context.fillStyle = "#d8dde3";
  context.fillText("messages/s, max " + Math.round(max), 4, 12);
}

$("symbol").addEventListener("change", (event) => {
  if (state.symbol) send({ op: "unsubscribe", symbol: state.symbol });
  state.symbol = event.target.value;
  state.bids.clear();
  state.asks.clear();
  $("book-symbol").textContent = state.symbol;
  queueRender();
  if (state.symbol) subscribe(state.symbol);
});

$("depth").addEventListener("change", (event) => {
  const depth = Number.parseInt(event.target.value, 10);
  if (depth >= 1) {
    state.depth = depth;
    if (state.symbol) subscribe(state.symbol);
  }
});

connect();
