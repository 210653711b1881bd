'use strict';
// zeromq 6.8.0 (zeromq.js, libzmq 4.3.5) over ipc://, i.e. a Unix socket. Multipart messages
// [topic, JSON text] or, for Buffers, [topic, bytes]. The socket types follow the pattern:
//
//   c2s        server Pull        <- client Push
//   s2c        server Push        -> client Pull
//   rpc        server Router     <-> client Dealer   (the reply is routed by the peer's id)
//   request    server Router     <-> client Dealer   (request/response, see below)
//   broadcast  server XPublisher  -> client Subscriber (subscribed to the topic)
//   idle       server Router         client Dealer   (scale: connections that send nothing)
//
// send() returns a promise, and zeromq.js allows one pending send per socket, so senders await
// each send; that also is its backpressure (the high-water mark). A server sees a connection as a
// 'handshake' event of the socket monitor, except for broadcast, where it counts subscriptions:
// a Publisher drops messages for subscribers it has not heard from yet, and the XPublisher is
// told each subscription. noDrop keeps the publisher from dropping messages for a subscriber at
// its high-water mark; send() then fails with EAGAIN (the socket polls writable while any one
// subscriber has room), so publish() waits for the next timer tick and tries again.
//
// request/response is zeromq's asynchronous request-reply pattern (DEALER/ROUTER, as REQ/REP
// allows only one request in flight): the client sends [id, topic, JSON], the server's handler
// result goes back as [id, JSON] (the Router puts the peer's routing id first and routes on it),
// and the client resolves the request with that id from a Map of pending ones. Like native's
// request() with its default options, each request has a 5000 ms timeout (one timer each). What
// this adapter does not do, and native's request() does: error replies (a throwing handler fails
// the run), a 'no handler' answer, rejecting requests in flight when the connection drops.
// zeromq.js allows one send in progress per socket (another one throws EBUSY), so with many
// requests in flight on one socket the sends go out one after the other (serialSender).

const zmq = require('zeromq');
const { TOPIC } = require('../util/workload');

const SERVER = {
  c2s: zmq.Pull,
  s2c: zmq.Push,
  rpc: zmq.Router,
  request: zmq.Router,
  broadcast: zmq.XPublisher,
  idle: zmq.Router,
};
const CLIENT = {
  c2s: zmq.Push,
  s2c: zmq.Pull,
  rpc: zmq.Dealer,
  request: zmq.Dealer,
  broadcast: zmq.Subscriber,
  idle: zmq.Dealer,
};

// The timeout of each request, as native-socket-ipc's default requestTimeout.
const REQUEST_TIMEOUT = 5000;

// A zeromq context allows 1023 sockets, and a connecting client needs up to three (its own and a
// monitor pair). scale opens 500 clients per process at once, so the process's context gets
// room for more; this is a per-process library option, nothing system-wide.
zmq.context.maxSockets = 8192;

const endpoint = (socketPath) => `ipc://${socketPath}`;

// A listener error inside the receive loop must fail the run, as a throwing listener would.
const crash = (err) => process.nextTick(() => {
  throw err;
});

// What the sender put in the payload frame: JSON text, or bytes for Buffers (the large scenario).
const encode = (message) => (Buffer.isBuffer(message) ? message : JSON.stringify(message));
const decoder = (binary) => (binary ? (payload) => payload : (payload) => JSON.parse(payload.toString()));

/** Calls handle(frames) for every message received on `socket`, until it closes. */
function readLoop(socket, handle) {
  (async () => {
    for await (const frames of socket) handle(frames);
  })().catch(crash);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends on an XPublisher with noDrop, retrying while some subscriber is at its high-water mark. */
async function publish(socket, frames) {
  for (;;) {
    try {
      return await socket.send(frames);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
      await sleep(0);
    }
  }
}

/**
 * send(frames) for a socket that may have several sends due at once: zeromq.js throws EBUSY on a
 * send while another one is still in progress (delayed at the high-water mark, or to let the
 * event loop breathe after 512 synchronous operations), so a send waits for the previous one.
 */
function serialSender(socket) {
  let last = null;
  return (frames) => {
    const sending = last === null ? socket.send(frames) : last.then(() => socket.send(frames));
    last = sending;
    sending.then(
      () => {
        if (last === sending) last = null;
      },
      () => {},
    );
    return sending;
  };
}

const noBacklog = {
  flush() {},
  congested: () => false,
  drained: () => Promise.resolve(),
};

async function listen(socketPath, { pattern, binary = false }) {
  const socket = new SERVER[pattern]();
  if (pattern === 'broadcast') {
    socket.noDrop = true;
    socket.verbosity = 'allSubs'; // every subscriber's subscription, not just the first per topic
  }
  const decode = decoder(binary);
  let onMessage = () => {};
  let onConnection = () => {};
  const handlers = new Map(); // request: topic -> handler
  if (pattern === 'broadcast') {
    readLoop(socket, ([subscription]) => {
      if (subscription[0] === 1) onConnection();
    });
  } else {
    socket.events.on('handshake', () => onConnection());
    if (pattern === 'request') {
      const reply = serialSender(socket);
      const answer = (peer, id) => (result) => reply([peer, id, encode(result)]).catch(crash);
      readLoop(socket, ([peer, id, topic, payload]) => {
        const handler = handlers.get(topic.toString());
        if (!handler) throw new Error(`request on topic '${topic}', which has no handler`);
        const result = handler(decode(payload), peer);
        if (result && typeof result.then === 'function') result.then(answer(peer, id), crash);
        else answer(peer, id)(result);
      });
    } else if (pattern === 'rpc' || pattern === 'idle') {
      readLoop(socket, ([peer, topic, payload]) => onMessage(decode(payload), topic.toString(), peer));
    } else if (pattern === 'c2s') {
      readLoop(socket, ([topic, payload]) => onMessage(decode(payload), topic.toString()));
    }
  }
  await socket.bind(endpoint(socketPath));
  return {
    ...noBacklog,
    onMessage: (fn) => (onMessage = fn),
    onConnection: (fn) => (onConnection = fn),
    send: (peer, topic, message) =>
      pattern === 'rpc' ? socket.send([peer, topic, encode(message)]) : socket.send([topic, encode(message)]),
    broadcast: (topic, message) => publish(socket, [topic, encode(message)]),
    handle: (topic, fn) => handlers.set(topic, fn),
  };
}

async function connect(socketPath, { pattern, binary = false }) {
  const socket = new CLIENT[pattern]();
  if (pattern === 'broadcast') socket.subscribe(TOPIC);
  const decode = decoder(binary);
  let onMessage = () => {};
  const pending = new Map(); // request id -> { resolve, timer }
  let lastId = 0;
  const sendRequest = serialSender(socket);
  if (pattern === 'request') {
    readLoop(socket, ([id, payload]) => {
      const key = id.toString();
      const request = pending.get(key);
      if (!request) return; // its timeout fired: the late reply is dropped
      pending.delete(key);
      clearTimeout(request.timer);
      request.resolve(decode(payload));
    });
  } else if (pattern !== 'c2s') {
    readLoop(socket, (frames) => onMessage(decode(frames[1]), frames[0].toString()));
  }
  // connect() returns at once; the monitor says when the connection is really up. It is read
  // with receive() rather than on(), because closing an observer that on() is still reading
  // throws ENOTSOCK later, and it is closed to give its sockets back.
  // libzmq retries a failed connect by itself (reconnect interval, default 100 ms).
  const events = socket.events;
  let retries = 0;
  socket.connect(endpoint(socketPath));
  for (;;) {
    const event = await events.receive();
    if (event.type === 'handshake') break;
    if (event.type === 'connect:retry') retries++;
  }
  events.close();
  return {
    ...noBacklog,
    retries,
    onMessage: (fn) => (onMessage = fn),
    send: (topic, message) => socket.send([topic, encode(message)]),
    request: (topic, message) =>
      new Promise((resolve, reject) => {
        const id = String(++lastId);
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(Object.assign(new Error(`request ${id} timed out after ${REQUEST_TIMEOUT} ms`), { code: 'ETIMEDOUT' }));
        }, REQUEST_TIMEOUT);
        pending.set(id, { resolve, timer });
        sendRequest([id, topic, encode(message)]).catch((err) => {
          pending.delete(id);
          clearTimeout(timer);
          reject(err);
        });
      }),
  };
}

module.exports = { name: 'zeromq', listen, connect };
