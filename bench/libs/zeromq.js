'use strict';
// zeromq 6.8.0 (zeromq.js, libzmq 4.3.5) over ipc://, i.e. a Unix socket. Multipart messages
// [topic, JSON text] or, for Buffers, [topic, bytes]. The socket types follow the pattern:
//
//   c2s        server Pull        <- client Push
//   s2c        server Push        -> client Pull
//   rpc        server Router     <-> client Dealer   (the reply is routed by the peer's id)
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

const zmq = require('zeromq');
const { TOPIC } = require('../util/workload');

const SERVER = { c2s: zmq.Pull, s2c: zmq.Push, rpc: zmq.Router, broadcast: zmq.XPublisher, idle: zmq.Router };
const CLIENT = { c2s: zmq.Push, s2c: zmq.Pull, rpc: zmq.Dealer, broadcast: zmq.Subscriber, idle: zmq.Dealer };

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
  if (pattern === 'broadcast') {
    readLoop(socket, ([subscription]) => {
      if (subscription[0] === 1) onConnection();
    });
  } else {
    socket.events.on('handshake', () => onConnection());
    if (pattern === 'rpc' || pattern === 'idle') {
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
  };
}

async function connect(socketPath, { pattern, binary = false }) {
  const socket = new CLIENT[pattern]();
  if (pattern === 'broadcast') socket.subscribe(TOPIC);
  const decode = decoder(binary);
  let onMessage = () => {};
  if (pattern !== 'c2s') {
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
  };
}

module.exports = { name: 'zeromq', listen, connect };
