'use strict';
// Plain node:net with newline-delimited JSON: the baseline every JavaScript IPC library builds on.
// Each message is one line {"t":topic,"m":message}; a Buffer travels as base64 in {"t","b"}.
// One write() per message. The receiver JSON.parses each line and calls the listener.
//
// `create({ batch })` is shared with net-batch.js, which writes once per `batch` messages.

const net = require('node:net');
const { socketBacklog } = require('../util/backlog');

// Delay before retrying a connect refused with EAGAIN (see connect()).
const RETRY_MS = 100;

const raise = (err) => {
  throw err;
};

function encode(topic, message) {
  const record = Buffer.isBuffer(message) ? { t: topic, b: message.toString('base64') } : { t: topic, m: message };
  return JSON.stringify(record) + '\n';
}

/** Splits a socket's text into lines and calls deliver(message, topic) for each. */
function attachReader(socket, deliver) {
  socket.setEncoding('utf8');
  const parts = []; // an incomplete line, in pieces, so a long line is joined once
  const line = (text) => {
    const record = JSON.parse(text);
    deliver(record.b !== undefined ? Buffer.from(record.b, 'base64') : record.m, record.t);
  };
  socket.on('data', (chunk) => {
    let end = chunk.indexOf('\n');
    if (end === -1) {
      parts.push(chunk);
      return;
    }
    if (parts.length > 0) {
      parts.push(chunk.slice(0, end));
      line(parts.join(''));
      parts.length = 0;
    } else {
      line(chunk.slice(0, end));
    }
    let start = end + 1;
    while ((end = chunk.indexOf('\n', start)) !== -1) {
      line(chunk.slice(start, end));
      start = end + 1;
    }
    if (start < chunk.length) parts.push(chunk.slice(start));
  });
}

/** Lines waiting to be written as one chunk (batch mode). */
class Pending {
  constructor() {
    this.text = '';
    this.count = 0;
  }
  add(line) {
    this.text += line;
    return ++this.count;
  }
  take() {
    const text = this.text;
    this.text = '';
    this.count = 0;
    return text;
  }
}

function create({ name, batch }) {
  function listen(socketPath) {
    const sockets = new Map(); // peer id -> socket
    const pending = new Map(); // peer id -> Pending (batch mode)
    const everyone = new Pending(); // broadcast lines (batch mode), encoded once for all peers
    let nextId = 1;
    let onMessage = () => {};
    let onConnection = () => {};

    const flushPeer = (peer) => {
      const queue = pending.get(peer);
      const socket = sockets.get(peer);
      if (queue && queue.count > 0 && socket) socket.write(queue.take());
    };
    const flushPeers = () => {
      for (const peer of pending.keys()) flushPeer(peer);
    };
    const flushEveryone = () => {
      if (everyone.count === 0) return;
      const text = everyone.take();
      for (const socket of sockets.values()) socket.write(text);
    };

    const server = net.createServer((socket) => {
      const peer = nextId++;
      sockets.set(peer, socket);
      socket.on('error', raise);
      socket.on('close', () => {
        sockets.delete(peer);
        pending.delete(peer);
      });
      attachReader(socket, (message, topic) => onMessage(message, topic, peer));
      onConnection(peer);
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        server.on('error', raise);
        resolve({
          ...socketBacklog(() => sockets.values()),
          onMessage: (fn) => (onMessage = fn),
          onConnection: (fn) => (onConnection = fn),
          send(peer, topic, message) {
            const socket = sockets.get(peer);
            if (!socket) throw new Error(`${name}: no peer ${peer}`);
            const line = encode(topic, message);
            if (batch === 1) return void socket.write(line);
            // Keep the order between broadcasts and sends: what was queued first goes first.
            flushEveryone();
            if (!pending.has(peer)) pending.set(peer, new Pending());
            if (pending.get(peer).add(line) >= batch) flushPeer(peer);
          },
          broadcast(topic, message) {
            const line = encode(topic, message);
            if (batch === 1) {
              for (const socket of sockets.values()) socket.write(line);
              return;
            }
            flushPeers();
            if (everyone.add(line) >= batch) flushEveryone();
          },
          flush() {
            flushPeers();
            flushEveryone();
          },
        });
      });
    });
  }

  async function connect(socketPath) {
    let retries = 0;
    for (;;) {
      try {
        return await connectOnce(socketPath, retries);
      } catch (err) {
        // A full accept backlog refuses a Unix socket connect with EAGAIN; any client has to
        // retry. Like zeromq's default reconnect interval: again after 100 ms.
        if (err.code !== 'EAGAIN' || retries >= 100) throw err;
        retries++;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  function connectOnce(socketPath, retries) {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      const queue = new Pending();
      let onMessage = () => {};
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.on('error', raise);
        attachReader(socket, (message, topic) => onMessage(message, topic));
        resolve({
          ...socketBacklog(() => [socket]),
          retries,
          onMessage: (fn) => (onMessage = fn),
          send(topic, message) {
            const line = encode(topic, message);
            if (batch === 1) return void socket.write(line);
            if (queue.add(line) >= batch) socket.write(queue.take());
          },
          flush() {
            if (queue.count > 0) socket.write(queue.take());
          },
        });
      });
    });
  }

  return { name, listen, connect };
}

module.exports = {
  ...create({ name: 'net', batch: 1 }),
  create,
  unsupported: { request: 'node:net has no request/response, only a byte stream' },
};
