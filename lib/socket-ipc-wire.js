'use strict';
// The @crussell52/socket-ipc wire (`protocol: 'socket-ipc'`), JavaScript's side of it: a message
// is the JSON text of `{ topic, message }` followed by two NULs. Sending encodes that text into
// the batch (the core strips the frame header: src/socket_ipc.rs); receiving reads the TEXT and
// TEXT_GROUP records the core makes of what it split at the NULs. The native wire never comes here.

const { ipcError, encodeError, tooLarge } = require('./errors');
const { KIND_TEXT, TEXT_DELIMITER, FRAME_START } = require('./kinds');

/**
 * Encodes one message as @crussell52/socket-ipc does: the JSON of `{ topic, message }` (so a
 * Buffer is `{ type: 'Buffer', data: [...] }`), which the core sends followed by two NULs.
 */
function appendMessage(out, target, topic, message) {
  let text;
  try {
    text = JSON.stringify({ topic, message });
  } catch (err) {
    throw encodeError(err.message, err);
  }
  const max = out.maxMessageSize;
  if (text.length > max) throw tooLarge(text.length, max);
  const start = out.len;
  out.reserve(out.prefix + FRAME_START + text.length * 3 + TEXT_DELIMITER.length);
  const buf = out.buf;
  const at = start + out.prefix;
  const textEnd = at + FRAME_START + buf.write(text, at + FRAME_START);
  if (textEnd - (at + FRAME_START) > max) throw tooLarge(textEnd - (at + FRAME_START), max);
  buf[textEnd] = 0;
  buf[textEnd + 1] = 0;
  const end = textEnd + TEXT_DELIMITER.length;
  if (out.prefix) buf.writeUInt32BE(target, start);
  buf.writeUInt32BE(end - (at + 4), at);
  buf[at + 4] = KIND_TEXT;
  out.len = end;
  out.scheduleFlush();
}

// Receiving: `sink` is { message(message, topic, id), error(err, id) }, made once per Incoming.

/**
 * A run of socket-ipc messages: `count u32 | count × text_len u32 | [t1,t2,…]`. Each text
 * stands alone as an array element (the core checked), so one JSON.parse reads them all; if it
 * fails, each is parsed on its own so only the bad ones become 'messageError'.
 */
function emitTexts(sink, buf, start, end, id) {
  const count = buf.readUInt32BE(start);
  const arrayAt = start + 4 + count * 4;
  let values = null;
  try {
    values = JSON.parse(buf.toString('utf8', arrayAt, end));
    if (values.length !== count) values = null;
  } catch {
    // Some text is not valid JSON: fall back to one parse per message.
  }
  let textAt = arrayAt + 1;
  for (let i = 0; i < count; i++) {
    const textLen = buf.readUInt32BE(start + 4 + i * 4);
    if (values !== null) emitWrapper(sink, values[i], id);
    else emitText(sink, buf.toString('utf8', textAt, textAt + textLen), id);
    textAt += textLen + 1;
  }
}

/** One socket-ipc message: the JSON text of `{ topic, message }`. */
function emitText(sink, text, id) {
  let wrapper;
  try {
    wrapper = JSON.parse(text);
  } catch (err) {
    sink.error(
      ipcError('ERR_IPC_DECODE', `socket-ipc message is not valid JSON: ${err.message}`, { cause: err }),
      id,
    );
    return;
  }
  emitWrapper(sink, wrapper, id);
}

/**
 * The topic of a `{ topic, message }` wrapper, as socket-ipc sends it: a missing or empty topic is
 * 'none', as ours; undefined when it is not such an object with a string topic.
 */
function topicOfWrapper(wrapper) {
  if (wrapper === null || typeof wrapper !== 'object' || Array.isArray(wrapper)) return undefined;
  const topic = wrapper.topic;
  if (topic === undefined || topic === null || topic === '') return 'none';
  return typeof topic === 'string' ? topic : undefined;
}

/** `{ topic, message }` as socket-ipc sends it. */
function emitWrapper(sink, wrapper, id) {
  const topic = topicOfWrapper(wrapper);
  if (topic !== undefined) {
    sink.message(wrapper.message, topic, id);
  } else {
    sink.error(
      ipcError('ERR_IPC_DECODE', 'socket-ipc message is not an object { topic, message } with a string topic'),
      id,
    );
  }
}

module.exports = { appendMessage, emitTexts, emitText, topicOfWrapper };
