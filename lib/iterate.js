'use strict';
// messages([options]): an async iterator over an endpoint's messages, shared by Server, Client
// and Peer. It is a listener like any other: messages are queued into it as they are emitted (in
// order, without bound) and handed out as the consumer asks. It ends at 'close', rejects with an
// AbortError when its signal aborts, and with the endpoint's failure when the endpoint stops by
// itself (a Server's listen() failed, a Client gave up). Ending in any way removes every listener
// it added.

const { typeError } = require('./errors');
const { topicOf } = require('./outgoing');

// Marks the 'error' listeners of iterators, so each can tell whether anyone else listens.
const kIteratorListener = Symbol('iteratorListener');

const AsyncIteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);

// Compact the queue once this many handed-out slots lead it (and they are half of it).
const COMPACT_AT = 1024;

/** Node's AbortError (name, code and `cause` as node:events on() gives them). */
function abortError(signal) {
  const err = new Error('The operation was aborted', { cause: signal.reason });
  err.name = 'AbortError';
  err.code = 'ABORT_ERR';
  return err;
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/** Validates messages()'s options: { topic?: string, signal?: AbortSignal }. */
function iteratorOptions(options) {
  if (options === undefined) return { topic: undefined, signal: undefined };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw typeError('ERR_INVALID_ARG_TYPE', `messages(options): options must be an object such as { topic, signal }, got ${typeName(options)}`);
  }
  const { topic, signal } = options;
  if (topic !== undefined && typeof topic !== 'string') {
    throw typeError('ERR_INVALID_ARG_TYPE', `messages(options): options.topic must be a string (leave it out for every topic), got ${typeName(topic)}`);
  }
  if (
    signal !== undefined &&
    (signal === null || typeof signal !== 'object' || !('aborted' in signal) || typeof signal.addEventListener !== 'function')
  ) {
    throw typeError('ERR_INVALID_ARG_TYPE', `messages(options): options.signal must be an AbortSignal, got ${typeName(signal)}`);
  }
  // As for send(): an empty topic is 'none'.
  return { topic: topic === undefined ? undefined : topicOf(topic), signal };
}

/**
 * The iterator over `endpoint`'s messages.
 * @param {import('node:events').EventEmitter} endpoint  a Server, Client or Peer
 * @param {object | undefined} options  { topic, signal }, validated here
 * @param {object} state  how the endpoint stands now: `closed` ('close' was emitted), `failure`
 *   (the error it stopped with, or undefined), and `isFailure(err)` (err is that error)
 * @param {(topic: string) => string} topicEvent  the 'message.<topic>' event name
 */
function messageIterator(endpoint, options, state, topicEvent) {
  const { topic, signal } = iteratorOptions(options);
  // Items not yet handed out are queue[head..]; next() calls waiting for one are `waiting`.
  let queue = [];
  let head = 0;
  const waiting = [];
  // Once stopped, no listener is left; what is queued is still handed out, then `ending` (an
  // error to reject one next() with), then done.
  let stopped = false;
  let ending = null;

  const onMessage =
    topic === undefined
      ? (message, msgTopic, clientId) => push(clientId === undefined ? { topic: msgTopic, message } : { topic: msgTopic, message, clientId })
      : (message, clientId) => push(clientId === undefined ? { topic, message } : { topic, message, clientId });
  const event = topic === undefined ? 'message' : topicEvent(topic);

  function push(item) {
    if (waiting.length > 0) waiting.shift().resolve({ value: item, done: false });
    else queue.push(item);
  }

  function removeListeners() {
    if (stopped) return;
    stopped = true;
    endpoint.removeListener(event, onMessage);
    endpoint.removeListener('close', onClose);
    endpoint.removeListener('error', onError);
    if (signal !== undefined) signal.removeEventListener('abort', onAbort);
  }

  /** Stops listening; `error` (if any) comes after what is queued, unless `discard`. */
  function end(error, discard) {
    removeListeners();
    if (discard) {
      queue = [];
      head = 0;
    }
    // A waiting next() means nothing is queued.
    if (waiting.length > 0) {
      const first = waiting.shift();
      if (error === undefined) first.resolve({ value: undefined, done: true });
      else first.reject(error);
      for (const w of waiting.splice(0)) w.resolve({ value: undefined, done: true });
    } else if (error !== undefined) {
      ending = error;
    }
  }

  function onClose() {
    end(undefined, false);
  }

  function onAbort() {
    end(abortError(signal), true);
  }

  // The failure the endpoint stops with ends the iterator (so it counts as handled). Any other
  // 'error' is not ours: if no one else listens, it throws as it would without the iterator.
  function onError(err) {
    if (state.isFailure(err)) {
      end(err, false);
      return;
    }
    if (endpoint.listeners('error').every((listener) => listener[kIteratorListener] === true)) throw err;
  }
  onError[kIteratorListener] = true;

  if (signal !== undefined && signal.aborted) {
    stopped = true;
    ending = abortError(signal);
  } else if (state.failure !== undefined) {
    stopped = true;
    ending = state.failure;
  } else if (state.closed) {
    stopped = true;
  } else {
    endpoint.on(event, onMessage);
    endpoint.on('close', onClose);
    endpoint.on('error', onError);
    if (signal !== undefined) signal.addEventListener('abort', onAbort, { once: true });
  }

  function finish() {
    removeListeners();
    queue = [];
    head = 0;
    ending = null;
    for (const w of waiting.splice(0)) w.resolve({ value: undefined, done: true });
  }

  const iterator = Object.create(AsyncIteratorPrototype);
  Object.assign(iterator, {
    next() {
      if (head < queue.length) {
        const value = queue[head];
        queue[head++] = undefined;
        if (head === queue.length) {
          queue = [];
          head = 0;
        } else if (head >= COMPACT_AT && head * 2 >= queue.length) {
          queue = queue.slice(head);
          head = 0;
        }
        return Promise.resolve({ value, done: false });
      }
      if (ending !== null) {
        const error = ending;
        ending = null;
        return Promise.reject(error);
      }
      if (stopped) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
    },
    /** What `break` (or a throw) in a for await loop calls: stops, dropping anything queued. */
    return(value) {
      finish();
      return Promise.resolve({ value, done: true });
    },
    /** Stops as return() does, and rejects with `error`. */
    throw(error) {
      finish();
      return Promise.reject(error);
    },
  });
  return iterator;
}

module.exports = { messageIterator, iteratorOptions, abortError };
