'use strict';
// Reads the batches of events the native core hands over (one call per wake-up, however many
// events it carries) and turns each record into a call on the owning Server or Client.
//
// Record layout (big-endian, see src/events.rs): kind u8 | id u32 | len u32 | body[len].

const { ipcError, fromNative } = require('./errors');
const { KIND_JSON, KIND_BINARY } = require('./outgoing');

const RECORD_HEADER = 9;

const EVENT = {
  LISTENING: 0x21,
  CONNECTION: 0x22,
  CONNECTION_CLOSE: 0x23,
  CONNECT: 0x24,
  DISCONNECT: 0x25,
  MESSAGE_ERROR: 0x26,
  ERROR: 0x27,
  CONNECT_ERROR: 0x28,
  CLOSE: 0x29,
};

// A binary message smaller than this is copied out of the batch, so holding on to it does not
// pin the whole batch in memory; a larger one is a view of the batch it came in.
const COPY_BELOW = 64 * 1024;

// The owner (Server or Client) implements these; symbols keep them off the public API.
const onMessage = Symbol('onMessage');
const onMessageError = Symbol('onMessageError');
const onEvent = Symbol('onEvent');

class Incoming {
  /**
   * @param {() => Buffer} take  takes the pending batch from the core
   * @param {object} handler  implements [onMessage](message, topic, id), [onMessageError](err, id), [onEvent](kind, id, body)
   */
  constructor(take, handler) {
    this.take = take;
    this.handler = handler;
    this.buf = Buffer.alloc(0);
    this.pos = 0;
  }

  /** Called on each wake-up from the core. */
  drain() {
    try {
      // What a throwing listener left of the previous batch comes first, to keep order.
      this.dispatch();
      this.buf = this.take();
      this.pos = 0;
      this.dispatch();
    } catch (err) {
      // A listener threw: it propagates as from any EventEmitter, and the rest of the batch is
      // delivered on the next tick rather than lost.
      process.nextTick(() => this.drain());
      throw err;
    }
  }

  dispatch() {
    const buf = this.buf;
    const handler = this.handler;
    while (this.pos < buf.length) {
      const at = this.pos;
      const kind = buf[at];
      const id = buf.readUInt32BE(at + 1);
      const start = at + RECORD_HEADER;
      const end = start + buf.readUInt32BE(at + 5);
      // Advance first: a listener that throws skips only its own record.
      this.pos = end;
      if (kind === KIND_JSON || kind === KIND_BINARY) {
        const topicEnd = start + 2 + buf.readUInt16BE(start);
        const topic = buf.toString('utf8', start + 2, topicEnd);
        let message;
        if (kind === KIND_BINARY) {
          message = end - topicEnd < COPY_BELOW ? Buffer.from(buf.subarray(topicEnd, end)) : buf.subarray(topicEnd, end);
        } else if (topicEnd < end) {
          try {
            message = JSON.parse(buf.toString('utf8', topicEnd, end));
          } catch (err) {
            const decodeError = ipcError('ERR_IPC_DECODE', `message on topic '${topic}' is not valid JSON: ${err.message}`, { topic, cause: err });
            handler[onMessageError](decodeError, id);
            continue;
          }
        }
        handler[onMessage](message, topic, id);
      } else if (kind === EVENT.MESSAGE_ERROR) {
        handler[onMessageError](fromNative(buf.toString('utf8', start, end)), id);
      } else {
        handler[onEvent](kind, id, buf.subarray(start, end));
      }
    }
  }
}

module.exports = { Incoming, EVENT, onMessage, onMessageError, onEvent };
