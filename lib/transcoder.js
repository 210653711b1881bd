'use strict';
// The `transcoder` option: @crussell52/socket-ipc 0.4's pluggable codec, carried on the native
// wire. Its interface is socket-ipc's:
//   { socketEncoding, createEncoder() -> encoder, createDecoder() -> decoder }
//   encoder({ topic, message }, (err, data) => …)   data: a string (sent as UTF-8) or bytes; null skips
//   decoder(chunk, (err, wrappers) => …)            chunk: a string in socketEncoding; wrappers: [{ topic, message }]
// One encoder serves the whole endpoint (a broadcast is encoded once), one decoder each connection.
//
// How it maps: socket-ipc writes the encoder's output on the socket and feeds the peer's decoder
// whatever the socket reads. Here each encoder output travels as one binary message frame (topic:
// the message's topic), and the receiving side feeds each such frame's bytes, in order, as the next
// chunk to that connection's decoder. So the transcoder's own framing (socket-ipc's "\0\0", a
// length prefix, …) still works end to end, and both ends must use the same transcoder, as with
// socket-ipc. Requests and replies are not transcoded (socket-ipc has none).
//
// Not on the socket-ipc wire (options.js refuses it): there the core reads the stream itself,
// splitting it at "\0\0" and checking each piece as socket-ipc's JSON, so bytes of another
// encoding cannot pass.

const { StringDecoder } = require('node:string_decoder');
const { ipcError, typeError, encodeError } = require('./errors');
const { topicOfWrapper } = require('./socket-ipc-wire');

/** What a transcoder's throw or callback error says, whatever it threw. */
function reasonOf(err) {
  return err instanceof Error ? err.message : String(err);
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value;
}

/**
 * Validates options.transcoder: the transcoder and the encoding its decoders read chunks in.
 * socket-ipc reads with socket.setEncoding(socketEncoding), which gives UTF-8 strings when it is
 * unset, so an unset socketEncoding means 'utf8' here too.
 */
function transcoderOption(transcoder) {
  if (transcoder === null || typeof transcoder !== 'object') {
    throw typeError(
      'ERR_INVALID_ARG_TYPE',
      `options.transcoder must be an object { socketEncoding, createEncoder, createDecoder }, as @crussell52/socket-ipc takes it; got ${typeName(transcoder)}`,
    );
  }
  for (const name of ['createEncoder', 'createDecoder']) {
    if (typeof transcoder[name] !== 'function') {
      throw typeError('ERR_INVALID_ARG_VALUE', `options.transcoder.${name} must be a function returning the transcoder's ${name === 'createEncoder' ? 'encoder' : 'decoder'}, got ${typeName(transcoder[name])}`);
    }
  }
  const encoding = transcoder.socketEncoding;
  if (encoding !== undefined && encoding !== null && (typeof encoding !== 'string' || !Buffer.isEncoding(encoding))) {
    throw typeError(
      'ERR_INVALID_ARG_VALUE',
      `options.transcoder.socketEncoding must be an encoding Buffer knows, such as 'utf8', 'latin1' or 'base64' (or unset for 'utf8'), got ${JSON.stringify(encoding) ?? typeName(encoding)}`,
    );
  }
  return { transcoder, socketEncoding: encoding === undefined || encoding === null ? 'utf8' : encoding };
}

/** What an encoder's callback got, as the bytes to send; null when there is nothing to send. */
function bytesOf(data) {
  if (data === null || data === undefined) return null; // socket-ipc: null skips the message
  let bytes;
  if (typeof data === 'string') bytes = Buffer.from(data, 'utf8'); // as socket.write(string) sends it
  else if (ArrayBuffer.isView(data)) bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  else throw encodeError(`the transcoder's encoder produced ${typeName(data)}; it must produce a string or a Buffer (or null to skip the message)`);
  // An empty write sends nothing on a socket, so the peer's decoder never sees it.
  return bytes.length === 0 ? null : bytes;
}

function encoderFailed(err, topic) {
  const why = reasonOf(err);
  const failure = encodeError(`the transcoder's encoder failed: ${why}`, err);
  failure.topic = topic;
  return failure;
}

function decodeError(message, props) {
  return ipcError('ERR_IPC_DECODE', message, props);
}

class Transcoding {
  /** `option`: what transcoderOption() returned. The encoder is made now, as socket-ipc does. */
  constructor(option) {
    this.transcoder = option.transcoder;
    this.socketEncoding = option.socketEncoding;
    let encoder;
    try {
      encoder = this.transcoder.createEncoder();
    } catch (err) {
      throw typeError('ERR_INVALID_ARG_VALUE', `options.transcoder.createEncoder() threw: ${reasonOf(err)}`, { cause: err });
    }
    if (typeof encoder !== 'function') {
      throw typeError('ERR_INVALID_ARG_VALUE', `options.transcoder.createEncoder() must return an encoder function (wrapper, callback), got ${typeName(encoder)}`);
    }
    this.encoder = encoder;
  }

  /**
   * Encodes `{ topic, message }` and hands the bytes to `deliver`: before returning when the
   * encoder calls back at once, else when it does. A failure before returning is thrown
   * (ERR_IPC_ENCODE, as for any message send() cannot encode); a later one goes to `failLater`.
   * A message the encoder skips (null) or never calls back for is not sent.
   */
  encode(topic, message, deliver, failLater) {
    let returned = false;
    let called = false;
    let failure;
    let bytes = null;
    const callback = (err, data) => {
      if (called) return; // one outcome per message
      called = true;
      if (err !== null && err !== undefined) failure = encoderFailed(err, topic);
      else {
        try {
          bytes = bytesOf(data);
        } catch (bad) {
          bad.topic = topic;
          failure = bad;
        }
      }
      if (!returned) return;
      if (failure !== undefined) {
        failLater(failure);
        return;
      }
      if (bytes === null) return;
      try {
        deliver(bytes);
      } catch (err) {
        // Too large, say: send() has returned, so it is reported instead of thrown.
        failLater(err);
      }
    };
    try {
      this.encoder({ topic, message }, callback);
    } catch (err) {
      // An encoder that called back first had its say; one that threw instead failed.
      if (!called) {
        called = true;
        failure = encoderFailed(err, topic);
      }
    }
    returned = true;
    if (!called) return;
    if (failure !== undefined) throw failure;
    if (bytes !== null) deliver(bytes);
  }

  /** The decoding state of one new connection. */
  connection() {
    return new ConnectionDecoder(this);
  }
}

/** One connection's decoder, made at its first message, and the text decoder before it. */
class ConnectionDecoder {
  constructor(transcoding) {
    this.transcoding = transcoding;
    this.decoder = null;
    this.text = null;
  }

  /**
   * Feeds one message's payload (the bytes of one encoder output) to the decoder, which calls
   * `emit(message, topic)` for each message it completes. Whatever fails is handed to
   * `fail(err)` as ERR_IPC_DECODE; after the decoder itself failed, the next chunk goes to a new
   * decoder (as socket-ipc, which drops the connection, starts the next one with a new decoder).
   * A listener that throws from `emit` propagates, as from any EventEmitter.
   */
  feed(payload, emit, fail) {
    if (!Buffer.isBuffer(payload)) {
      fail(
        decodeError(
          `a message arrived that was not encoded by a transcoder (it came as ${payload === undefined ? 'no payload' : 'JSON'}, not bytes); give both ends the same transcoder option`,
        ),
      );
      return;
    }
    if (this.decoder === null && !this.start(fail)) return;
    const chunk = this.text.write(payload);
    if (chunk === '') return; // the start of a character split across messages: wait for the rest
    const decoder = this.decoder;
    let called = false;
    const callback = (err, wrappers) => {
      if (called) return;
      called = true;
      if (err !== null && err !== undefined) {
        if (this.decoder === decoder) this.decoder = null;
        fail(decodeError(`the transcoder's decoder failed: ${reasonOf(err)}; the next message starts a new decoder`, { cause: err }));
        return;
      }
      if (!Array.isArray(wrappers)) {
        fail(decodeError(`the transcoder's decoder must call back with an array of { topic, message }, got ${typeName(wrappers)}`));
        return;
      }
      for (const wrapper of wrappers) {
        const topic = topicOfWrapper(wrapper);
        if (topic === undefined) fail(decodeError("the transcoder's decoder produced something that is not { topic, message } with a string topic"));
        else emit(wrapper.message, topic);
      }
    };
    try {
      decoder(chunk, callback);
    } catch (err) {
      // After the callback ran, what is thrown is a listener's (or the decoder's, past its say).
      if (called) throw err;
      called = true;
      if (this.decoder === decoder) this.decoder = null;
      fail(decodeError(`the transcoder's decoder threw: ${reasonOf(err)}; the next message starts a new decoder`, { cause: err }));
    }
  }

  /** Makes the decoder (and the text decoder for socketEncoding); false if the transcoder failed. */
  start(fail) {
    let decoder;
    try {
      decoder = this.transcoding.transcoder.createDecoder();
    } catch (err) {
      fail(decodeError(`options.transcoder.createDecoder() threw: ${reasonOf(err)}`, { cause: err }));
      return false;
    }
    if (typeof decoder !== 'function') {
      fail(decodeError(`options.transcoder.createDecoder() must return a decoder function (chunk, callback), got ${typeName(decoder)}`));
      return false;
    }
    this.decoder = decoder;
    // Characters split across messages are joined, as socket.setEncoding() joins them across reads.
    this.text = new StringDecoder(this.transcoding.socketEncoding);
    return true;
  }
}

module.exports = { transcoderOption, Transcoding };
