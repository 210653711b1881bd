'use strict';
/**
 * Conversation: server and clients in one script, holding a short conversation over several
 * topics. Replies are not tied to what they answer, so every message repeats the number of the
 * "hello" that started its conversation.
 *
 *   node conversation.js <socketFile> [--transcoder]
 *
 * Written for @crussell52/socket-ipc 0.4. The library comes from one place only, the require
 * below (IPC_LIB, default '@crussell52/socket-ipc'); nothing else changes between libraries.
 *
 * Each conversation goes:
 *   - Server: "hello" (a broadcast)
 *   - Client: "helloback", with its name and the original message
 *   - Server: "helloagain", repeating the original, but only to the client named "charlie"
 * The server says hello once before anyone is there (nobody hears it), then once both bob and
 * charlie are connected, and again each time both have answered, three times in all; then it
 * broadcasts "goodbye", the clients close, and once both have left the server closes.
 *
 * With --transcoder, server and clients use a custom transcoder (socket-ipc's `transcoder`
 * option): newline-delimited JSON whose decoder revives ISO date strings as Dates, so the
 * dates in the messages arrive as Dates instead of strings.
 *
 * Each line is tagged with who saw it: [server], [bob], [charlie], or [server/<name>] for what
 * the server exchanged with one client. Lines with one tag come in a fixed order; lines with
 * different tags interleave however the two connections happen to be served.
 */
const util = require('node:util');
const { Server, Client } = require(process.env.IPC_LIB || '@crussell52/socket-ipc');

const [socketFile, ...flags] = process.argv.slice(2);
const useTranscoder = flags.includes('--transcoder');
const LAST_HELLO = 4; // hello 1 goes to nobody; 2, 3 and 4 are answered

setTimeout(() => {
  console.log('[main] gave up: the conversation did not finish in time');
  process.exit(1);
}, 15000).unref();

const log = (who, ...parts) => console.log(`[${who}]`, ...parts);
// Messages are shown as console.log shows them (a Date unquoted, a string quoted), on one line.
const show = (value) => util.inspect(value, { depth: 5, breakLength: Infinity });

// A Transcoder as socket-ipc 0.4 defines it: a socket encoding and factories of encoder and
// decoder functions that answer through callbacks. Each decoder keeps its own buffer.
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const datesTranscoder = {
  socketEncoding: 'utf8',
  createEncoder: () => (msgWrapper, callback) => {
    let data;
    try {
      data = JSON.stringify(msgWrapper) + '\n';
    } catch (err) {
      callback(err);
      return;
    }
    callback(null, data);
  },
  createDecoder: () => {
    let buffer = '';
    return (chunk, callback) => {
      const lines = (buffer + chunk).split('\n');
      buffer = lines.pop();
      const msgWrappers = [];
      for (const line of lines) {
        try {
          msgWrappers.push(JSON.parse(line, (key, value) => (typeof value === 'string' && ISO_DATE.test(value) ? new Date(value) : value)));
        } catch (err) {
          callback(err);
          return;
        }
      }
      callback(null, msgWrappers);
    };
  },
};
const options = useTranscoder ? { socketFile, transcoder: datesTranscoder } : { socketFile };

const createClient = (clientName) => {
  // The client knows nothing of the server, and nothing outside knows the client: they only
  // talk through messages.
  const client = new Client(options);

  client.on('connect', () => log(clientName, 'connected'));

  // Log ALL messages from the server, whatever the topic.
  client.on('message', (message, topic) => log(clientName, `Server -> Client (${clientName}): [${topic}]`, show(message)));

  // Answer each hello with a helloback carrying this client's name and the original message.
  client.on('message.hello', (original) => client.send('helloback', { clientName, original }));

  client.on('message.goodbye', () => {
    log(clientName, 'closing');
    client.close();
  });

  client.on('error', (err) => log(clientName, `error: ${err.message}`));
  client.on('close', () => log(clientName, 'closed'));

  client.connect();
};

const server = new Server(options);

// Client ids are UUIDs on socket-ipc and integers elsewhere: they are shown as <id> once checked
// to be one that 'connection' announced.
const known = new Set();
const idOf = (clientId) => (known.has(clientId) ? '<id>' : `<unknown id ${String(clientId)}>`);

let helloCounter = 1;
let answers = 0;
function hello() {
  const n = helloCounter++;
  answers = 0;
  log('server', `broadcast [hello] ${n}`);
  server.broadcast('hello', { n, sentAt: new Date(Date.UTC(2018, 0, n)) });
}

let connected = 0;
server.on('connection', (clientId, socket) => {
  known.add(clientId);
  connected++;
  log('server', `a client connected (${connected} connected)`);
  socket.on('close', () => {
    connected--;
    log('server', `a client left (${connected} connected)`);
    if (connected === 0) server.close();
  });
  if (connected === 2) hello();
});

// Log all messages coming into the server; server-side listeners also get the client id.
server.on('message', (message, topic, clientId) => {
  log(`server/${message.clientName}`, `Client (${idOf(clientId)}) -> Server: [${topic}]`, show(message));
});

// Say hello again, repeating the original message, but only to charlie.
server.on('message.helloback', (message, clientId) => {
  if (message.clientName === 'charlie') {
    log('server/charlie', `Server -> Client (${idOf(clientId)}): [helloagain]`, show(message.original));
    server.send('helloagain', message.original, clientId);
  }
  if (++answers < 2) return;
  if (helloCounter <= LAST_HELLO) {
    hello();
  } else {
    log('server', 'broadcast [goodbye]');
    server.broadcast('goodbye', 'that is all for today');
  }
});

server.on('error', (err) => log('server', `error: ${err.message}`));
server.on('close', () => log('server', 'closed'));

server.on('listening', () => {
  log('server', 'listening');
  // Say hello at once, though nobody is connected yet: nobody hears this one.
  hello();
  createClient('bob');
  createClient('charlie');
});
server.listen();
