'use strict';
// Reads the events the native core hands over and turns each record into a call on the owning
// Server or Client. One wake-up from the core is drained a slice at a time (each slice copied
// into a reused buffer), for at most TURN_MS per turn of the event loop: a flood of messages
// delays timers, I/O and other connections by no more than that.
//
// Record layout (big-endian, see src/events.rs): kind u8 | id u32 | len u32 | body[len].

const { ipcError, fromNative } = require('./errors');
const socketIpc = require('./socket-ipc-wire');
const {
  KIND_JSON,
  KIND_BINARY,
  KIND_JSON_GROUP,
  KIND_ATTACHED,
  KIND_TEXT,
  KIND_TEXT_GROUP,
  KIND_NOT_TEXT,
  KIND_REQUEST_JSON,
  KIND_REQUEST_BINARY,
  KIND_REPLY_JSON,
  KIND_REPLY_BINARY,
  KIND_REPLY_ERROR,
  EVENT,
  RECORD_HEADER,
  GROUP_ENTRY,
  MORE,
} = require('./kinds');

// Records are copied from the core into a slice buffer of this size, reused slice after slice,
// so nothing the core hands over waits for a garbage collection to be freed.
const SLICE_BYTES = 256 * 1024;
// Slice buffers not in use, shared by every Server and Client of this thread (they take turns).
const spareSlices = [];
const SPARE_SLICES = 4;
// How long the JS thread delivers events before it lets the event loop turn (timers, I/O, other
// sockets run in between), as Node's streams hand over one chunk per 'data'; the clock is read
// once per CHECK_EVERY events.
const TURN_MS = 10;
const CHECK_EVERY = 32;

// The turn of the event loop, shared by every Server and Client of this thread. Events are
// counted; every CHECK_EVERY of them the clock is read: the first reading starts the turn's
// TURN_MS and schedules the immediate that marks its end, a later one past TURN_MS ends delivery
// for this turn. So a quiet thread never reads the clock nor schedules an immediate.
const turn = { countdown: CHECK_EVERY, startedAt: -1, over: false, scheduled: false, waiting: [] };

/** One more event emitted: false once this turn's time is up. */
function tick() {
  if (--turn.countdown > 0) return !turn.over;
  turn.countdown = CHECK_EVERY;
  const now = performance.now();
  if (turn.startedAt < 0) {
    turn.startedAt = now;
    watchForEndOfTurn();
    return true;
  }
  if (now - turn.startedAt < TURN_MS) return true;
  turn.over = true;
  return false;
}

/** The immediate that marks where this turn ends, scheduled once per turn. */
function watchForEndOfTurn() {
  if (turn.scheduled) return;
  turn.scheduled = true;
  setImmediate(endOfTurn);
}

function endOfTurn() {
  turn.scheduled = false;
  turn.countdown = CHECK_EVERY;
  turn.startedAt = -1;
  turn.over = false;
  const waiting = turn.waiting;
  turn.waiting = [];
  for (const incoming of waiting) {
    incoming.deferred = false;
    try {
      incoming.drain();
    } catch (err) {
      // A listener threw: uncaught, as from any EventEmitter, once the others had their turn.
      process.nextTick(() => {
        throw err;
      });
    }
  }
}

// The owner (Server or Client) implements these; symbols keep them off the public API.
const onMessage = Symbol('onMessage');
const onMessageError = Symbol('onMessageError');
const onEvent = Symbol('onEvent');
const onRequest = Symbol('onRequest');
const onReply = Symbol('onReply');
const onReplyError = Symbol('onReplyError');

class Incoming {
  /**
   * @param {() => object} native  the native Server or Client: takeEvents(slice), takeAttached()
   * @param {object} handler  implements [onMessage](message, topic, id), [onMessageError](err, id),
   *   [onEvent](kind, id, body), and for requests [onRequest](requestId, topic, message, id),
   *   [onReply](requestId, message, id), [onReplyError](requestId, status, infoJson, id)
   * @param {(() => void) | null} afterBatch  called once every record taken so far was handed to
   *   the listeners (at-least-once delivery acknowledges them then)
   */
  constructor(native, handler, afterBatch = null) {
    this.native = native;
    this.handler = handler;
    this.afterBatch = afterBatch;
    // The slice being dispatched: records in buf[pos, len).
    this.buf = null;
    this.pos = 0;
    this.len = 0;
    // The core has more records than the last slice held.
    this.more = false;
    // The large frames the slice's ATTACHED records stand for, once asked for, and the next one.
    this.attached = null;
    this.attachedAt = 0;
    // A JSON group being emitted; kept here so a throwing listener loses none of it.
    this.group = null;
    // Delivery stopped for this turn and goes on in the next (see `turn`).
    this.deferred = false;
    // Where socket-ipc messages go (lib/socket-ipc-wire.js).
    this.textSink = {
      message: (message, topic, id) => handler[onMessage](message, topic, id),
      error: (err, id) => handler[onMessageError](err, id),
    };
  }

  /** Called on each wake-up from the core, and again in the next turn if time ran out. */
  drain() {
    // A wake-up means records are waiting (also when it comes while delivery waits for its turn).
    this.more = true;
    if (this.deferred) return;
    let finished = false;
    if (!turn.over) {
      try {
        finished = this.deliver();
      } catch (err) {
        // A listener threw: it propagates as from any EventEmitter, and the rest of the slice is
        // delivered on the next tick rather than lost.
        process.nextTick(() => this.drain());
        throw err;
      }
    }
    if (!finished) this.defer();
  }

  /** Goes on in the next turn of the event loop. */
  defer() {
    this.deferred = true;
    turn.waiting.push(this);
    watchForEndOfTurn();
  }

  /**
   * Dispatches the slice in hand, then takes and dispatches slices while the core has more:
   * true once it has none, false if this turn's time ran out first.
   */
  deliver() {
    for (;;) {
      if (this.buf === null && !this.take()) return true;
      if (!this.dispatch()) return false;
      if (this.afterBatch !== null) this.afterBatch();
      this.releaseSlice();
      if (!this.more) return true;
      if (turn.over) return false;
    }
  }

  /** Takes the next slice of records from the core; false if there were none. */
  take() {
    const native = this.native();
    let slice = spareSlices.pop() ?? Buffer.allocUnsafeSlow(SLICE_BYTES);
    let taken = native.takeEvents(slice);
    if (taken < 0) {
      // One record larger than a slice (a big group of messages): a buffer of its own.
      if (slice.length === SLICE_BYTES) spareSlices.push(slice);
      slice = Buffer.allocUnsafe(-taken);
      taken = native.takeEvents(slice);
    }
    this.more = taken >= MORE;
    this.buf = slice;
    this.pos = 0;
    this.len = this.more ? taken - MORE : taken;
    this.attached = null;
    this.attachedAt = 0;
    if (this.len > 0) return true;
    this.releaseSlice();
    return false;
  }

  releaseSlice() {
    if (this.buf.length === SLICE_BYTES && spareSlices.length < SPARE_SLICES) spareSlices.push(this.buf);
    this.buf = null;
    this.len = 0;
    this.pos = 0;
  }

  /** Emits the slice's records from `pos` on; false if time ran out first. */
  dispatch() {
    if (this.group !== null && !this.emitGroup()) return false;
    const buf = this.buf;
    const len = this.len;
    const handler = this.handler;
    while (this.pos < len) {
      const at = this.pos;
      const kind = buf[at];
      const id = buf.readUInt32BE(at + 1);
      const start = at + RECORD_HEADER;
      const end = start + buf.readUInt32BE(at + 5);
      // Advance first: a listener that throws skips only its own record.
      this.pos = end;
      if (kind === KIND_JSON_GROUP) {
        this.startGroup(buf, id, start, end);
        if (!this.emitGroup()) return false;
        continue;
      } else if (kind === KIND_JSON || kind === KIND_BINARY) {
        this.emitMessage(kind, buf, start, end, id, false);
      } else if (kind === KIND_ATTACHED) {
        // The frame's own memory: a Buffer message is a view of it, never copied.
        if (this.attached === null) this.attached = this.native().takeAttached();
        const frame = this.attached[this.attachedAt++];
        if (frame[4] === KIND_JSON || frame[4] === KIND_BINARY) this.emitMessage(frame[4], frame, 5, frame.length, id, true);
        else this.emitCall(frame[4], frame, 5, frame.length, id, true);
      } else if (kind === KIND_TEXT) {
        socketIpc.emitText(this.textSink, buf.toString('utf8', start, end), id);
      } else if (kind === KIND_TEXT_GROUP) {
        socketIpc.emitTexts(this.textSink, buf, start, end, id);
      } else if (kind === KIND_NOT_TEXT) {
        this.emitNotText(buf, start, end, id);
      } else if (kind < 0x80) {
        this.emitCall(kind, buf, start, end, id, false);
      } else if (kind === EVENT.MESSAGE_ERROR) {
        handler[onMessageError](fromNative(buf.toString('utf8', start, end)), id);
      } else {
        handler[onEvent](kind, id, buf.subarray(start, end));
      }
      if (!tick() && this.pos < len) return false;
    }
    return true;
  }

  /**
   * Emits one message whose body (`topic_len u16 | topic | payload`) is `buf[start, end)`. A
   * binary payload is a view of `buf` when `view` (the memory is the message's own frame), else a
   * copy (the slice is reused).
   */
  emitMessage(kind, buf, start, end, id, view) {
    const handler = this.handler;
    const topicEnd = start + 2 + buf.readUInt16BE(start);
    const topic = topicOf(buf, start + 2, topicEnd);
    let message;
    if (kind === KIND_BINARY) {
      message = view ? buf.subarray(topicEnd, end) : Buffer.from(buf.subarray(topicEnd, end));
    } else if (topicEnd < end) {
      try {
        message = JSON.parse(buf.toString('utf8', topicEnd, end));
      } catch (err) {
        handler[onMessageError](decodeError(topic, err), id);
        return;
      }
    }
    handler[onMessage](message, topic, id);
  }

  /**
   * A request or reply whose body is `buf[start, end)`: `request_id u32 | …` (PROTOCOL.md).
   * Its payload decodes as a message's does.
   */
  emitCall(kind, buf, start, end, id, view) {
    const handler = this.handler;
    const requestId = buf.readUInt32BE(start);
    if (kind === KIND_REPLY_ERROR) {
      handler[onReplyError](requestId, buf[start + 4], buf.toString('utf8', start + 5, end), id);
      return;
    }
    let topic = null;
    let payloadAt = start + 4;
    if (kind === KIND_REQUEST_JSON || kind === KIND_REQUEST_BINARY) {
      payloadAt += 2 + buf.readUInt16BE(payloadAt);
      topic = topicOf(buf, start + 6, payloadAt);
    }
    let message;
    let failure;
    if (kind === KIND_REQUEST_BINARY || kind === KIND_REPLY_BINARY) {
      message = view ? buf.subarray(payloadAt, end) : Buffer.from(buf.subarray(payloadAt, end));
    } else if (payloadAt < end) {
      try {
        message = JSON.parse(buf.toString('utf8', payloadAt, end));
      } catch (err) {
        failure = decodeError(topic === null ? 'reply' : topic, err, topic === null ? 'reply' : 'request');
      }
    }
    if (topic === null) handler[onReply](requestId, message, id, failure);
    else handler[onRequest](requestId, topic, message, id, failure);
  }

  /**
   * A data frame whose JSON is not UTF-8 (src/events.rs, NOT_TEXT: `kind u8 | frame body`): a
   * failure of that one message, request or reply, as if its JSON did not parse.
   */
  emitNotText(buf, start, end, id) {
    const handler = this.handler;
    const kind = buf[start];
    const body = start + 1;
    if (kind === KIND_JSON) {
      const topicEnd = body + 2 + buf.readUInt16BE(body);
      handler[onMessageError](notTextError(topicOf(buf, body + 2, topicEnd), 'message'), id);
    } else if (kind === KIND_REQUEST_JSON) {
      const requestId = buf.readUInt32BE(body);
      const topicEnd = body + 6 + buf.readUInt16BE(body + 4);
      const topic = topicOf(buf, body + 6, topicEnd);
      handler[onRequest](requestId, topic, undefined, id, notTextError(topic, 'request'));
    } else if (kind === KIND_REPLY_JSON) {
      handler[onReply](buf.readUInt32BE(body), undefined, id, notTextError('reply', 'reply'));
    } else if (kind === KIND_REPLY_ERROR) {
      // The error's JSON cannot be read: lib/calls.js says so in the rejection.
      handler[onReplyError](buf.readUInt32BE(body), buf[body + 4], null, id);
    } else {
      this.textSink.error(ipcError('ERR_IPC_DECODE', 'socket-ipc message is not valid UTF-8, so it is not JSON; fix the program that sent it'), id);
    }
  }

  /**
   * A JSON group (src/events.rs, encode_messages): `count u32 | array_at u32 | count × entry |
   * topics | [p1,p2,…]`, entry = `same_topic u8 | topic_len u16 | payload_len u32`. One
   * JSON.parse reads every payload; if it fails, each payload is parsed alone so only the bad
   * ones become 'messageError'.
   */
  startGroup(buf, id, start, end) {
    const count = buf.readUInt32BE(start);
    const arrayAt = start + buf.readUInt32BE(start + 4);
    let values = null;
    try {
      values = JSON.parse(buf.toString('utf8', arrayAt, end));
    } catch {
      // Some payload is not valid JSON: fall back to one parse per message.
    }
    this.group = {
      buf, id, count, values,
      index: 0,
      entry: start + 8,
      topicAt: start + 8 + count * GROUP_ENTRY,
      payloadAt: arrayAt + 1,
      topic: '',
    };
  }

  /** Emits the group's messages from where it stopped; false if time ran out first. */
  emitGroup() {
    const g = this.group;
    const { buf, id, values } = g;
    const handler = this.handler;
    while (g.index < g.count) {
      if (g.index > 0 && !tick()) return false;
      const i = g.index++;
      const entry = g.entry;
      g.entry += GROUP_ENTRY;
      if (buf[entry] === 0) {
        const topicLen = buf.readUInt16BE(entry + 1);
        g.topic = topicOf(buf, g.topicAt, g.topicAt + topicLen);
        g.topicAt += topicLen;
      }
      const payloadAt = g.payloadAt;
      const payloadLen = buf.readUInt32BE(entry + 3);
      g.payloadAt += payloadLen + 1;
      let message;
      if (values !== null) {
        message = values[i];
      } else {
        try {
          message = JSON.parse(buf.toString('utf8', payloadAt, payloadAt + payloadLen));
        } catch (err) {
          handler[onMessageError](decodeError(g.topic, err), id);
          continue;
        }
      }
      handler[onMessage](message, g.topic, id);
    }
    this.group = null;
    return true;
  }
}

/** The topic in `buf[start, end)`; an empty one is 'none', as senders write it (PROTOCOL.md). */
function topicOf(buf, start, end) {
  return start === end ? 'none' : buf.toString('utf8', start, end);
}

/** What failed to decode: a reply, or a message or request on its topic. */
function described(topic, what) {
  return what === 'reply' ? 'reply' : `${what} on topic '${topic}'`;
}

/** A JSON payload that is not UTF-8 (see emitNotText). */
function notTextError(topic, what) {
  return ipcError('ERR_IPC_DECODE', `${described(topic, what)} is not valid UTF-8, so it is not the JSON its frame promises; fix the program that sent it`, { topic });
}

function decodeError(topic, cause, what = 'message') {
  return ipcError('ERR_IPC_DECODE', `${described(topic, what)} is not valid JSON: ${cause.message}`, { topic, cause });
}

module.exports = { Incoming, EVENT, onMessage, onMessageError, onEvent, onRequest, onReply, onReplyError };
