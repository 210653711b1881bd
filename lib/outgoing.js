'use strict';
// Encodes messages into wire frames (PROTOCOL.md) and hands them to the native core in batches:
// every send() in one tick of the event loop goes across in a single call, so crossing into Rust
// costs once per tick, not once per message.

const { typeError, rangeError, encodeError, tooLarge } = require('./errors');
const socketIpc = require('./socket-ipc-wire');
const {
  KIND_JSON,
  KIND_BINARY,
  KIND_REQUEST_JSON,
  KIND_REQUEST_BINARY,
  KIND_REPLY_JSON,
  KIND_REPLY_BINARY,
  KIND_REPLY_ERROR,
  KIND_TEXT,
  MAX_TOPIC_BYTES,
  FRAME_START,
  REQUEST_ID,
} = require('./kinds');

const NO_ID = -1;
const INITIAL_CAPACITY = 64 * 1024;
// A binary payload this large is handed to the core on its own (see appendLarge).
const LARGE_PAYLOAD = 64 * 1024;
// Past this, a batch goes to the core at once instead of waiting for the end of the tick.
const FLUSH_AT = 1024 * 1024;
// A batch buffer that grew for one huge message is not kept around.
const KEEP_AT_MOST = 4 * 1024 * 1024;
// Encoded topics shared by every sender in the process (bounded, so varied topics cannot grow it).
const TOPIC_CACHE_SIZE = 1024;
const topicCache = new Map();
// Runs of JSON messages by target and topic (see Outgoing#texts): 3 numbers each.
const RUNS_INITIAL = 3 * 64;
const RUNS_KEEP = 3 * 4096;

/** The JSON text of a message, or an ERR_IPC_ENCODE TypeError if it has none. */
function stringify(message) {
  let text;
  try {
    text = JSON.stringify(message);
  } catch (err) {
    throw encodeError(err.message, err);
  }
  if (text === undefined) throw encodeError(`${typeof message} is not representable as JSON`);
  return text;
}

/** Normalises a topic: empty or missing becomes 'none' (as socket-ipc documents). */
function topicOf(topic) {
  if (topic === undefined || topic === null || topic === '') return 'none';
  if (typeof topic !== 'string') {
    throw typeError('ERR_INVALID_ARG_TYPE', `topic must be a string, got ${typeof topic}`);
  }
  return topic;
}

class Outgoing {
  /**
   * @param {boolean} targeted  each frame is preceded by a u32 target client id (server side)
   * @param {number} maxMessageSize
   * @param {(batch: Buffer) => boolean} deliver  hands a batch to the core; false keeps it for later
   * @param {(target: number, head: Buffer, payload: Buffer) => boolean} deliverLarge  hands one
   *   large binary message to the core (which copies it once); false if it cannot take it now
   * @param {number} highWaterMark  a batch this large goes to the core at once, so the core's
   *   view of each connection's buffer (what send() returns) is never a whole mark behind
   * @param {boolean} socketIpc  messages are encoded for @crussell52/socket-ipc's wire
   * @param {((texts: string, runs: Uint32Array) => boolean) | null} deliverTexts  hands a batch of
   *   JSON messages to the core as text (see `appendText`); false keeps it for later
   */
  constructor(targeted, maxMessageSize, deliver, deliverLarge, highWaterMark = FLUSH_AT, socketIpc = false, deliverTexts = null) {
    this.socketIpc = socketIpc;
    this.prefix = targeted ? 4 : 0;
    this.maxMessageSize = maxMessageSize;
    this.flushAt = Math.min(FLUSH_AT, highWaterMark);
    this.deliver = deliver;
    this.deliverLarge = deliverLarge;
    this.buf = Buffer.allocUnsafe(INITIAL_CAPACITY);
    this.len = 0;
    this.scheduled = false;
    this.lastTopic = undefined;
    this.lastTopicBytes = undefined;
    // JSON messages not yet framed: `texts` holds, per run, the topic then each message's JSON
    // followed by '\n' (JSON.stringify never writes a raw newline); `runs` holds (target, topic
    // bytes, count) per run. The core frames them in one call: one UTF-8 conversion per batch
    // instead of a Buffer write per message. Only one of `texts` and `buf` holds anything at a
    // time, so the order of messages is the order of sends.
    this.deliverTexts = deliverTexts;
    this.texts = '';
    this.textCount = 0;
    this.runs = new Uint32Array(RUNS_INITIAL);
    this.runsLen = 0;
    this.runTopics = [];
    this.runTarget = -1;
    this.runTopic = undefined;
  }

  /** Encodes one message; throws (and queues nothing) if it cannot be encoded or is too large. */
  append(target, topic, message) {
    if (this.socketIpc) socketIpc.appendMessage(this, target, topic, message);
    else if (this.deliverTexts === null || this.len > 0 || message === undefined || ArrayBuffer.isView(message)) {
      this.frame(target, KIND_JSON, NO_ID, topic, message);
    } else this.appendText(target, topic, message);
  }

  /** A JSON message as text, for the core to frame (see `texts`). */
  appendText(target, topic, message) {
    const text = stringify(message);
    const topicBytes = this.encodeTopic(topic).length;
    // kind + topic length + topic + payload; a UTF-16 unit is 1 to 3 bytes of UTF-8.
    const max = this.maxMessageSize;
    const fixed = 3 + topicBytes;
    if (fixed + text.length > max) throw tooLarge(fixed + text.length, max);
    if (fixed + text.length * 3 > max) {
      const size = fixed + Buffer.byteLength(text);
      if (size > max) throw tooLarge(size, max);
    }
    if (target !== this.runTarget || topic !== this.runTopic || this.textCount === 0) {
      if (this.runsLen + 3 > this.runs.length) {
        const grown = new Uint32Array(this.runs.length * 2);
        grown.set(this.runs);
        this.runs = grown;
      }
      this.runs[this.runsLen] = target;
      this.runs[this.runsLen + 1] = topicBytes;
      this.runs[this.runsLen + 2] = 0;
      this.runsLen += 3;
      this.runTopics.push(topic);
      this.runTarget = target;
      this.runTopic = topic;
      this.texts += topic;
    }
    this.runs[this.runsLen - 1]++;
    this.texts += text + '\n';
    this.textCount++;
    this.scheduleFlush();
  }

  /** Hands the JSON messages gathered as text to the core; false if it cannot take them now. */
  flushTexts() {
    if (this.textCount === 0) return true;
    if (!this.deliverTexts(this.texts, this.runs.subarray(0, this.runsLen))) return false;
    this.forgetTexts();
    if (this.runs.length > RUNS_KEEP) this.runs = new Uint32Array(RUNS_INITIAL);
    return true;
  }

  forgetTexts() {
    this.texts = '';
    this.textCount = 0;
    this.runsLen = 0;
    this.runTopics = [];
    this.runTopic = undefined;
  }

  /**
   * The texts the core could not take yet become frames in `buf`, behind which later sends of
   * any kind queue (the rare path: a client before its first connect).
   */
  textsToFrames() {
    const { texts, runs, runsLen, runTopics } = this;
    this.forgetTexts();
    let at = 0;
    for (let r = 0; r < runsLen; r += 3) {
      const topic = runTopics[r / 3];
      at += topic.length;
      for (let i = 0; i < runs[r + 2]; i++) {
        const end = texts.indexOf('\n', at);
        this.writeFrame(runs[r], KIND_JSON, NO_ID, topic, texts.slice(at, end), undefined);
        at = end + 1;
      }
    }
  }

  /** Encodes one request (`id` matches its reply); throws as `append`. */
  appendRequest(target, id, topic, message) {
    this.frame(target, KIND_REQUEST_JSON, id, topic, message);
  }

  /** Encodes one reply to request `id`; throws as `append`. */
  appendReply(target, id, message) {
    this.frame(target, KIND_REPLY_JSON, id, null, message);
  }

  /** Encodes a failed reply: `status` (see lib/calls.js) and `{ message, code }` as JSON. */
  appendReplyError(target, id, status, info) {
    const text = JSON.stringify(info);
    const start = this.len;
    this.reserve(this.prefix + FRAME_START + REQUEST_ID + 1 + text.length * 3);
    const buf = this.buf;
    const at = start + this.prefix;
    buf[at + 4] = KIND_REPLY_ERROR;
    buf.writeUInt32BE(id, at + FRAME_START);
    buf[at + FRAME_START + REQUEST_ID] = status;
    const end = at + FRAME_START + REQUEST_ID + 1 + buf.write(text, at + FRAME_START + REQUEST_ID + 1);
    if (this.prefix) buf.writeUInt32BE(target, start);
    buf.writeUInt32BE(end - (at + 4), at);
    this.len = end;
    this.scheduleFlush();
  }

  /**
   * Encodes one frame of `jsonKind` (or its binary twin when `message` is bytes):
   * `len | kind | [request id] | [topic_len | topic] | payload`; `topic` null means no topic.
   */
  frame(target, jsonKind, id, topic, message) {
    if (this.textCount > 0 && !this.flushTexts()) this.textsToFrames();
    if (ArrayBuffer.isView(message)) {
      const bytes = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
      this.writeFrame(target, jsonKind + 1, id, topic, undefined, bytes);
    } else {
      this.writeFrame(target, jsonKind, id, topic, message === undefined ? '' : stringify(message), undefined);
    }
  }

  /** Writes one frame whose payload is `text` (JSON) or `bytes`; see `frame`. */
  writeFrame(target, kind, id, topic, text, bytes) {
    const max = this.maxMessageSize;
    // Bytes between the kind byte and the payload.
    const fixed = (id === NO_ID ? 0 : REQUEST_ID) + (topic === null ? 0 : 2);
    const topicChars = topic === null ? 0 : topic.length;
    const payloadAtLeast = bytes ? bytes.length : text.length;
    if (1 + fixed + topicChars + payloadAtLeast > max) throw tooLarge(1 + fixed + topicChars + payloadAtLeast, max);
    if (bytes && bytes.length >= LARGE_PAYLOAD && this.appendLarge(target, kind, id, topic, bytes)) return;

    // Reserve the worst case (3 UTF-8 bytes per UTF-16 unit), write, then fill in the lengths.
    const start = this.len;
    const payloadAtMost = bytes ? bytes.length : text.length * 3;
    this.reserve(this.prefix + FRAME_START + fixed + topicChars * 3 + payloadAtMost + 1);
    const buf = this.buf;
    const at = start + this.prefix;
    let pos = at + FRAME_START;
    if (id !== NO_ID) {
      buf.writeUInt32BE(id, pos);
      pos += REQUEST_ID;
    }
    if (topic !== null) {
      const encodedTopic = this.encodeTopic(topic);
      const topicBytes = encodedTopic.length;
      buf[pos] = topicBytes >>> 8;
      buf[pos + 1] = topicBytes & 0xff;
      pos += 2;
      // Copying a short topic byte by byte beats a native write call several times over.
      if (topicBytes <= 32) for (let i = 0; i < topicBytes; i++) buf[pos + i] = encodedTopic[i];
      else encodedTopic.copy(buf, pos);
      pos += topicBytes;
    }
    const end = pos + (bytes ? bytes.copy(buf, pos) : buf.write(text, pos));
    const frameLen = end - (at + 4);
    if (frameLen > max) throw tooLarge(frameLen, max);
    if (this.prefix) buf.writeUInt32BE(target, start);
    buf.writeUInt32BE(frameLen, at);
    buf[at + 4] = kind;
    this.len = end;
    this.scheduleFlush();
  }

  scheduleFlush() {
    if (this.len + this.texts.length >= this.flushAt) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(flushAtEndOfTick, this);
    }
  }

  /**
   * A large Buffer skips the batch: copying it there and then into the core would be two copies
   * of a megabyte where one will do. The batch so far goes first, to keep the order.
   */
  appendLarge(target, kind, id, topic, bytes) {
    const encodedTopic = topic === null ? null : this.encodeTopic(topic);
    const headLen = FRAME_START + (id === NO_ID ? 0 : REQUEST_ID) + (encodedTopic === null ? 0 : 2 + encodedTopic.length);
    const frameLen = headLen - 4 + bytes.length;
    if (frameLen > this.maxMessageSize) throw tooLarge(frameLen, this.maxMessageSize);
    this.flush();
    if (this.len > 0) return false; // the core cannot take the batch yet; queue behind it
    const head = Buffer.allocUnsafe(headLen);
    head.writeUInt32BE(frameLen, 0);
    head[4] = kind;
    let pos = FRAME_START;
    if (id !== NO_ID) {
      head.writeUInt32BE(id, pos);
      pos += REQUEST_ID;
    }
    if (encodedTopic !== null) {
      head.writeUInt16BE(encodedTopic.length, pos);
      encodedTopic.copy(head, pos + 2);
    }
    return this.deliverLarge(target, head, bytes);
  }

  /** The UTF-8 bytes of a topic, cached: most programs use a handful of topics. */
  encodeTopic(topic) {
    if (topic === this.lastTopic) return this.lastTopicBytes;
    let bytes = topicCache.get(topic);
    if (bytes === undefined) {
      bytes = Buffer.from(topic);
      if (bytes.length > MAX_TOPIC_BYTES) {
        throw rangeError('ERR_IPC_TOPIC_TOO_LONG', `topic is ${bytes.length} bytes of UTF-8; the maximum is ${MAX_TOPIC_BYTES}`);
      }
      if (topicCache.size < TOPIC_CACHE_SIZE) topicCache.set(topic, bytes);
    }
    this.lastTopic = topic;
    this.lastTopicBytes = bytes;
    return bytes;
  }

  reserve(bytes) {
    if (this.len + bytes <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + bytes));
    this.buf.copy(grown, 0, 0, this.len);
    this.buf = grown;
  }

  /** Hands everything encoded so far to the core (which copies it), then reuses the buffer. */
  flush() {
    if (this.textCount > 0 && !this.flushTexts()) this.textsToFrames();
    if (this.len === 0 || !this.deliver(this.buf.subarray(0, this.len))) return;
    this.len = 0;
    if (this.buf.length > KEEP_AT_MOST) this.buf = Buffer.allocUnsafe(INITIAL_CAPACITY);
  }

  /** Forgets what was not delivered; returns how many messages that was (requests are rejected
   * by their own promises, and replies answer requests that are failing anyway). */
  discard() {
    let count = this.textCount;
    this.forgetTexts();
    for (let pos = 0; pos < this.len; pos += this.prefix + 4 + this.buf.readUInt32BE(pos + this.prefix)) {
      const kind = this.buf[pos + this.prefix + 4];
      if (kind === KIND_JSON || kind === KIND_BINARY || kind === KIND_TEXT) count++;
    }
    this.len = 0;
    return count;
  }
}

function flushAtEndOfTick(outgoing) {
  outgoing.scheduled = false;
  outgoing.flush();
}

module.exports = { Outgoing, topicOf };
