#!/usr/bin/env node
'use strict';
// The command-line tool: `native-socket-ipc listen|send|request|bench`. Plain Node (node:util
// parseArgs, nothing else), so it runs wherever the library does, from Node 18 on.
//
// Exit status: 0 success, 1 a runtime failure (cannot connect, refused, remote error, timeout),
// 2 a usage error (unknown command or flag, missing argument, bad JSON). Every expected error is
// one line on stderr, `native-socket-ipc: <code>: <message>`, never a stack trace.

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');

const NAME = 'native-socket-ipc';
const SECRET_ENV = 'NATIVE_SOCKET_IPC_SECRET';
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
// The hidden subcommand `bench` forks this file with: the client half of the benchmark.
const BENCH_CLIENT = '__bench-client';

// ----- errors -----

/** A mistake in the command line: exit 2, with a pointer to --help. */
function usageError(code, message, command) {
  return Object.assign(new Error(message), { code, usage: true, command });
}

/** Something that went wrong while doing what was asked: exit 1. */
function failure(code, message, props) {
  return Object.assign(new Error(message), { code }, props);
}

// ----- the command line -----

// Every flag of every command; each command lists the ones it takes (COMMANDS below). Node 18's
// parseArgs has no `default` and no `--no-` negation, so defaults are applied by hand and
// --no-tls-verify is a flag of its own.
const FLAGS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  secret: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-servername': { type: 'string' },
  'no-tls-verify': { type: 'boolean' },
  protocol: { type: 'string' },
  json: { type: 'boolean' },
  handle: { type: 'string', multiple: true },
  reply: { type: 'string' },
  retries: { type: 'string' },
  raw: { type: 'boolean' },
  timeout: { type: 'string' },
  count: { type: 'string' },
  size: { type: 'string' },
  requests: { type: 'string' },
};

const COMMON = ['help', 'version', 'secret', 'protocol'];
const SERVER_TLS = ['tls-cert', 'tls-key', 'tls-ca'];
const CLIENT_TLS = ['tls-cert', 'tls-key', 'tls-ca', 'tls-servername', 'no-tls-verify'];

const ADDRESS_HELP = `Addresses:
  /path/to/app.sock, unix:///path   a Unix socket file (Linux, macOS)
  unix:@name                        a Linux abstract socket
  \\\\.\\pipe\\name                     a Windows named pipe
  tcp://host:port                   TCP (tcp4://, tcp6:// force the family)
  tls://host:port                   TCP with TLS (or add --tls-* flags to any address)`;

const SECRET_HELP = `  --secret <s>              Shared secret, at least 16 bytes (HMAC handshake; never sent).
                            Better: set ${SECRET_ENV} in the environment, which keeps
                            the secret out of \`ps\` and shell history.`;

const PROTOCOL_HELP = `  --protocol <p>            native (default) or socket-ipc (the @crussell52/socket-ipc wire;
                            no secret, TLS or requests)`;

const COMMON_HELP = `  -h, --help                Show help
      --version             Show the version`;

const COMMANDS = {
  listen: {
    args: ['address'],
    flags: ['json', 'handle', 'reply', ...SERVER_TLS],
    summary: 'Listen at <address> and print every message received',
    help: `Usage: ${NAME} listen <address> [options]

Starts a server at <address> and prints one line per message on stdout:
  [client 1] greet {"name":"ada"}
Connections, disconnections and refused clients are reported on stderr. Runs until Ctrl-C
(SIGINT) or SIGTERM, then closes cleanly (exit 0).

Options:
  --json                    One JSON object per line (NDJSON): {"clientId","topic","message"};
                            a Buffer message is base64 with "encoding":"base64" on the line,
                            and an undefined message has no "message" key
  --handle <topic>          Answer requests on <topic> (repeatable). The reply is --reply's
                            value, or else the request's own message (an echo). Handled
                            requests are printed too, marked as requests.
  --reply <json>            The reply to every handled request (needs --handle: the library
                            answers requests per topic)
  --tls-cert <file>         Certificate (PEM) for TLS; with --tls-key turns TLS on
  --tls-key <file>          Private key (PEM) of the certificate
  --tls-ca <file>           CA (PEM) of client certificates: clients must present one (mutual TLS)
${SECRET_HELP}
${PROTOCOL_HELP}
${COMMON_HELP}

${ADDRESS_HELP}

Example:
  ${NAME} listen /tmp/app.sock --handle ping --reply '"pong"'`,
  },
  send: {
    args: ['address', 'topic', 'json'],
    flags: ['retries', 'raw', ...CLIENT_TLS],
    summary: 'Send one message to the server at <address>',
    help: `Usage: ${NAME} send <address> <topic> <json> [options]

Connects to the server at <address>, sends <json> (parsed with JSON.parse) on <topic>, waits
until it has been written and exits 0. <json> of - reads the message from stdin.

Options:
  --raw                     Send <json> (or stdin) as raw bytes: a Buffer, not JSON
  --retries <n>             Failed connection attempts tolerated after the first (default 3)
${clientTlsHelp()}
${SECRET_HELP}
${PROTOCOL_HELP}
${COMMON_HELP}

A JSON string needs its quotes ('"hello"'); put -- before a message that starts with '-'.

${ADDRESS_HELP}

Examples:
  ${NAME} send /tmp/app.sock greet '{"name":"ada"}'
  echo '[1, 2, 3]' | ${NAME} send tcp://127.0.0.1:9000 numbers -`,
  },
  request: {
    args: ['address', 'topic', 'json'],
    flags: ['retries', 'raw', 'timeout', ...CLIENT_TLS],
    summary: 'Make a request and print the reply',
    help: `Usage: ${NAME} request <address> <topic> <json> [options]

Connects to the server at <address>, asks its handler for <topic> with <json> (- reads it from
stdin) and prints the reply as JSON on stdout (exit 0). A Buffer reply is written as its raw
bytes; an undefined reply prints nothing. A remote error, a timeout or a topic without a
handler prints the error's code and message on stderr (exit 1).

Options:
  --timeout <ms>            How long to wait for the reply (default 5000; 0: no limit)
  --raw                     Send <json> (or stdin) as raw bytes: a Buffer, not JSON
  --retries <n>             Failed connection attempts tolerated after the first (default 3)
${clientTlsHelp()}
${SECRET_HELP}
${PROTOCOL_HELP}
${COMMON_HELP}

${ADDRESS_HELP}

Example:
  ${NAME} request /tmp/app.sock sum '[1, 2, 3]'`,
  },
  bench: {
    args: ['address'],
    flags: ['json', 'count', 'size', 'requests', 'tls-cert', 'tls-key', 'tls-ca', 'tls-servername', 'no-tls-verify'],
    summary: 'Measure throughput and latency at <address>',
    help: `Usage: ${NAME} bench <address> [options]

Starts a server at <address> in this process and a client in a child process, then measures:
  one-way     --count messages of --size bytes (Buffers), client to server: messages/s and
              MB/s of payload, timed at the server from the first message to the last
  requests    --requests round trips of a --size-byte request and its echo, one at a time:
              p50 and p99 latency
No other terminal or server is needed; the address must be free.

Options:
  --count <n>               Messages in the one-way run (default 100000)
  --size <bytes>            Payload size of each message and request (default 64)
  --requests <n>            Round trips to time (default 1000; 0 skips them)
  --json                    Print the results as one JSON object
  --tls-cert <file>         Certificate (PEM) of the server; with --tls-key turns TLS on
  --tls-key <file>          Private key (PEM) of the server
  --tls-ca <file>           CA (PEM) the client verifies the server with
  --tls-servername <name>   Name the client expects in the server's certificate
  --no-tls-verify           The client does not verify the server's certificate
${SECRET_HELP}
${PROTOCOL_HELP}
${COMMON_HELP}

${ADDRESS_HELP}

Example:
  ${NAME} bench /tmp/bench.sock --count 200000 --size 1024`,
  },
};

function clientTlsHelp() {
  return `  --tls-ca <file>           CA (PEM) to verify the server's certificate with (default: the
                            public CAs, as node:tls)
  --tls-servername <name>   Name expected in the server's certificate (default: the host;
                            'localhost' over a Unix socket)
  --no-tls-verify           Do not verify the server's certificate (still encrypted, but to
                            whoever answers)
  --tls-cert <file>         Client certificate (PEM), for a server that asks for one
  --tls-key <file>          Private key (PEM) of the client certificate`;
}

function globalHelp() {
  const width = Math.max(...Object.entries(COMMANDS).map(([name, c]) => `${name} ${argList(c)}`.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${`${name} ${argList(c)}`.padEnd(width)}   ${c.summary}`);
  return `Usage: ${NAME} <command> [options]

Talk to native-socket-ipc servers from the shell: watch messages, send one, make a request,
measure a transport.

Commands:
${lines.join('\n')}

Options for every command:
${SECRET_HELP}
  --tls-cert, --tls-key, --tls-ca, --tls-servername <…>, --no-tls-verify
                            TLS (see each command's --help)
${PROTOCOL_HELP}
${COMMON_HELP}

Run '${NAME} <command> --help' (or '${NAME} help <command>') for a command's options.

${ADDRESS_HELP}

Exit status: 0 success, 1 failure (cannot connect, refused, remote error, timeout),
2 usage error. Errors go to stderr as '${NAME}: <code>: <message>'.`;
}

const argList = (command) => command.args.map((a) => `<${a}>`).join(' ');

/** Parses argv and runs the command; resolves with the exit status. */
async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: FLAGS, allowPositionals: true, strict: true });
  } catch (err) {
    const command = argv.find((a) => Object.prototype.hasOwnProperty.call(COMMANDS, a));
    throw usageError(err.code || 'ERR_INVALID_ARG_VALUE', err.message, command);
  }
  const { values, positionals } = parsed;
  const [name, ...args] = positionals;

  if (name === BENCH_CLIENT) return benchClient();
  if (values.version) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (name === 'help') {
    if (args[0] === undefined) return printHelp(globalHelp());
    if (!Object.prototype.hasOwnProperty.call(COMMANDS, args[0])) throw unknownCommand(args[0]);
    return printHelp(COMMANDS[args[0]].help);
  }
  if (name === undefined) {
    if (values.help) return printHelp(globalHelp());
    throw usageError('ERR_MISSING_ARGS', `no command given; the commands are ${commandNames()}`);
  }
  if (!Object.prototype.hasOwnProperty.call(COMMANDS, name)) throw unknownCommand(name);
  const command = COMMANDS[name];
  if (values.help) return printHelp(command.help);

  for (const flag of Object.keys(values)) {
    if (!COMMON.includes(flag) && !command.flags.includes(flag)) {
      throw usageError('ERR_PARSE_ARGS_UNKNOWN_OPTION', `the option '--${flag}' does not apply to '${name}'`, name);
    }
  }
  if (args.length < command.args.length) {
    const missing = command.args.slice(args.length).map((a) => `<${a}>`).join(' ');
    throw usageError('ERR_MISSING_ARGS', `'${name}' needs ${missing}: ${NAME} ${name} ${argList(command)}`, name);
  }
  if (args.length > command.args.length) {
    throw usageError(
      'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL',
      `unexpected argument '${args[command.args.length]}': ${NAME} ${name} ${argList(command)} (quote a JSON message that contains spaces)`,
      name,
    );
  }
  try {
    return await RUN[name](args, values);
  } catch (err) {
    if (err && err.usage && err.command === undefined) err.command = name;
    throw err;
  }
}

const commandNames = () => Object.keys(COMMANDS).join(', ');

function unknownCommand(name) {
  return usageError('ERR_INVALID_ARG_VALUE', `unknown command '${name}'; the commands are ${commandNames()}`);
}

function printHelp(text) {
  process.stdout.write(`${text}\n`);
  return 0;
}

function version() {
  return JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version;
}

// ----- options shared by the commands -----

/** The library, loaded only when a command needs it (so --help works without the native addon). */
function library() {
  try {
    return require('..');
  } catch (err) {
    throw failure(err.code || 'ERR_DLOPEN_FAILED', `cannot load the native-socket-ipc library: ${err.message}`);
  }
}

/** A whole number flag, from `min` up; `fallback` when absent. */
function integerFlag(values, name, min, fallback, max = Number.MAX_SAFE_INTEGER) {
  const text = values[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max) {
    throw usageError('ERR_INVALID_ARG_VALUE', `--${name} must be a whole number from ${min} to ${max}, got '${text}'`);
  }
  return value;
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw usageError(
      'ERR_INVALID_ARG_VALUE',
      `${what} is not valid JSON (${err.message}); a string needs JSON quotes, e.g. '"hello"', or use --raw to send bytes`,
    );
  }
}

/** The message to send: <json> parsed, or stdin for '-'; bytes with --raw. */
async function messageArgument(text, values) {
  let bytes;
  if (text === '-') {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    bytes = Buffer.concat(chunks);
  }
  if (values.raw) return bytes ?? Buffer.from(text);
  return parseJson(bytes === undefined ? text : bytes.toString('utf8'), bytes === undefined ? '<json>' : 'the message on stdin');
}

function readPem(file, flag) {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw failure(err.code || 'ERR_INVALID_ARG_VALUE', `cannot read ${flag} ${file}: ${err.message}`);
  }
}

/** Options for a Server or a Client at `address`, from the common flags. */
function endpointOptions(address, values, side) {
  const options = { address };
  const secret = values.secret !== undefined ? values.secret : process.env[SECRET_ENV];
  if (secret !== undefined && secret !== '') options.secret = secret;
  if (values.protocol !== undefined) {
    if (values.protocol !== 'native' && values.protocol !== 'socket-ipc') {
      throw usageError('ERR_INVALID_ARG_VALUE', `--protocol must be 'native' or 'socket-ipc', got '${values.protocol}'`);
    }
    options.protocol = values.protocol;
  }
  const tls = {};
  if (values['tls-cert'] !== undefined) tls.cert = readPem(values['tls-cert'], '--tls-cert');
  if (values['tls-key'] !== undefined) tls.key = readPem(values['tls-key'], '--tls-key');
  if (values['tls-ca'] !== undefined) tls.ca = readPem(values['tls-ca'], '--tls-ca');
  if (side === 'server') {
    // A server's CA only serves to check client certificates, so giving one asks for them.
    if (tls.ca !== undefined) tls.requestCert = true;
  } else {
    if (values['tls-servername'] !== undefined) tls.servername = values['tls-servername'];
    if (values['no-tls-verify']) tls.rejectUnauthorized = false;
  }
  if (Object.keys(tls).length > 0) options.tls = tls;
  return options;
}

/** `new Class(options)`; a bad option (the constructor throws) is a usage error. */
function construct(Class, options, command) {
  try {
    return new Class(options);
  } catch (err) {
    throw usageError(err.code || 'ERR_INVALID_ARG_VALUE', err.message, command);
  }
}

/** How an address reads: a socket path as is, TCP as tcp://host:port. */
function describeAddress(address, tls) {
  if (address === null || typeof address === 'string') return String(address);
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  return `${tls ? 'tls' : 'tcp'}://${host}:${address.port}`;
}

// ----- printing messages -----

// Topics print bare unless they would be hard to read that way (empty, spaces, control characters).
const plainTopic = (topic) => (topic === '' || /[\s\p{C}"]/u.test(topic) ? JSON.stringify(topic) : topic);

function showValue(message) {
  if (message === undefined) return 'undefined';
  if (Buffer.isBuffer(message)) {
    const shown = message.subarray(0, 32).toString('hex').replace(/(..)(?!$)/g, '$1 ');
    return `<Buffer ${message.length} bytes${message.length > 0 ? `: ${shown}${message.length > 32 ? ' …' : ''}` : ''}>`;
  }
  return JSON.stringify(message);
}

function humanLine(clientId, topic, message, request) {
  return `[client ${clientId}] ${plainTopic(topic)}${request ? ' (request)' : ''} ${showValue(message)}`;
}

function jsonLine(clientId, topic, message, request) {
  const line = { clientId, topic };
  if (Buffer.isBuffer(message)) {
    line.message = message.toString('base64');
    line.encoding = 'base64';
  } else {
    line.message = message;
  }
  if (request) line.request = true;
  return JSON.stringify(line);
}

const note = (text) => process.stderr.write(`${text}\n`);

function describeClient(info) {
  if (info === undefined) return '';
  if (info.pid !== undefined) return ` (pid ${info.pid}, uid ${info.uid}, gid ${info.gid})`;
  return ` (${describeAddress(info)})`;
}

const errorText = (err) => `${err.code}: ${err.message}`;

// ----- listen -----

async function listen([address], values) {
  const topics = [...new Set(values.handle || [])];
  if (values.reply !== undefined && topics.length === 0) {
    throw usageError('ERR_MISSING_ARGS', "--reply needs --handle <topic>: the library answers requests per topic (repeat --handle for several)", 'listen');
  }
  const reply = values.reply === undefined ? undefined : parseJson(values.reply, '--reply');
  const options = endpointOptions(address, values, 'server');
  const { Server } = library();
  const server = construct(Server, options, 'listen');
  const line = values.json ? jsonLine : humanLine;
  const print = (text) => process.stdout.write(`${text}\n`);

  server.on('message', (message, topic, clientId) => print(line(clientId, topic, message, false)));
  for (const topic of topics) {
    server.handle(topic, (message, clientId) => {
      print(line(clientId, topic, message, true));
      return reply === undefined ? message : reply;
    });
  }
  server.on('connection', (id) => note(`client ${id} connected${describeClient(server.clientInfo(id))}`));
  server.on('connectionClose', (id, reason) => note(`client ${id} disconnected${reason ? ` (${errorText(reason)})` : ''}`));
  server.on('clientDisconnect', (id, reason) => note(`client ${id} lost its connection${reason ? ` (${errorText(reason)})` : ''}; its session waits`));
  server.on('clientReconnect', (id) => note(`client ${id} reconnected`));
  server.on('authError', (err, info) => note(`refused a connection${describeClient(info)}: ${errorText(err)}`));
  server.on('messageError', (err, id) => note(`bad input from client ${id}: ${errorText(err)}`));

  return new Promise((resolve, reject) => {
    let listening = false;
    let stopping = false;
    let failed = null;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      server.close();
    };
    const onSignal = () => stop();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    // Output piped into something that stopped reading (`| head`): done, not an error.
    process.stdout.on('error', (err) => {
      if (err.code === 'EPIPE') stop();
      else failed = failed || failure(err.code || 'ERR_STREAM_WRITE', `cannot write to stdout: ${err.message}`);
    });
    server.on('listening', () => {
      listening = true;
      note(`listening on ${describeAddress(server.address(), options.tls !== undefined || /^tls:/i.test(address))}`);
    });
    server.on('error', (err) => {
      if (listening) {
        note(`error: ${errorText(err)}`);
        return;
      }
      failed = failed || err;
      stop();
    });
    server.on('close', () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (failed) reject(failed);
      else resolve(0);
    });
    server.listen();
  });
}

// ----- send and request -----

/** A connected Client, or a rejection: no server after the retries, or refused (secret, TLS). */
function connectClient(address, values, command) {
  const retries = integerFlag(values, 'retries', 0, 3, 1000);
  const options = endpointOptions(address, values, 'client');
  const { Client } = library();
  const client = construct(Client, {
    ...options,
    maxRetries: retries,
    retryDelay: { min: 100, max: 1000, factor: 2 },
    // A dropped connection ends the command (requests reject with ERR_IPC_DISCONNECTED).
    reconnectDelay: 100,
  }, command);
  // Errors after the connection are collected, and reported by closeClient().
  client.errors = [];
  return new Promise((resolve, reject) => {
    let last = null;
    let attempts = 0;
    client.on('connectError', (err) => {
      last = err;
      attempts++;
    });
    const onError = (err) => {
      if (err.code === 'ERR_IPC_RETRIES_EXHAUSTED' && last !== null) {
        err = failure(
          'ERR_IPC_RETRIES_EXHAUSTED',
          `could not connect to ${address} (${attempts} attempt${attempts === 1 ? '' : 's'}): ${last.message}${
            last.code === 'ENOENT' || last.code === 'ECONNREFUSED' ? '; is a server listening there? (--retries tries longer)' : ''
          }`,
          { cause: last },
        );
      }
      client.once('close', () => reject(err));
    };
    client.on('error', onError);
    client.once('connect', () => {
      client.off('error', onError);
      client.on('error', (err) => client.errors.push(err));
      resolve(client);
    });
    client.connect();
  });
}

/** close(), which flushes what was sent; rejects with the first error the client reported. */
function closeClient(client) {
  return new Promise((resolve, reject) => {
    client.once('close', () => (client.errors.length > 0 ? reject(client.errors[0]) : resolve()));
    client.close();
  });
}

async function send([address, topic, text], values) {
  const message = await messageArgument(text, values);
  const client = await connectClient(address, values, 'send');
  try {
    client.send(topic, message);
  } catch (err) {
    // Cannot be encoded (too large, topic too long): nothing was sent.
    client.close();
    throw err;
  }
  await closeClient(client);
  return 0;
}

async function request([address, topic, text], values) {
  const timeout = integerFlag(values, 'timeout', 0, 5000, 2 ** 31 - 1);
  const message = await messageArgument(text, values);
  const client = await connectClient(address, values, 'request');
  let reply;
  try {
    reply = await client.request(topic, message, { timeout });
  } catch (err) {
    client.close();
    throw err;
  }
  await closeClient(client);
  if (Buffer.isBuffer(reply)) process.stdout.write(reply);
  else if (reply !== undefined) process.stdout.write(`${JSON.stringify(reply)}\n`);
  return 0;
}

// ----- bench -----

// The benchmark's topics; the client half (benchClient) uses the same.
const TOPIC = { start: 'bench.start', data: 'bench.data', end: 'bench.end', synced: 'bench.synced', echo: 'bench.echo' };
// Without progress for this long, the benchmark fails rather than hangs.
const STALL_MS = 15000;

/** Where the client connects: the server's address, with the port it got if it asked for 0. */
function connectAddress(address, bound) {
  if (bound === null || typeof bound === 'string') return address;
  const match = /^(tcp[46]?|tls):\/\/(.*):\d+\/?$/i.exec(address);
  if (match === null) return address; // { host, port } given otherwise: not from the command line
  let host = match[2];
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '[::]') host = '[::1]';
  return `${match[1]}://${host}:${bound.port}`;
}

async function bench([address], values) {
  const count = integerFlag(values, 'count', 1, 100000);
  const size = integerFlag(values, 'size', 0, 64, 8 * 1024 * 1024 - 64);
  const socketIpc = values.protocol === 'socket-ipc';
  // The socket-ipc wire has no requests.
  const requests = socketIpc ? 0 : integerFlag(values, 'requests', 0, 1000);
  const serverOptions = endpointOptions(address, { ...values, 'tls-ca': undefined }, 'server');
  // The client speaks TLS whenever the server does (with the default checks if no flag says more).
  const clientTls = endpointOptions(address, { ...values, 'tls-cert': undefined, 'tls-key': undefined }, 'client').tls || (serverOptions.tls && {});
  const { Server } = library();
  const server = construct(Server, serverOptions, 'bench');

  let received = 0;
  let echoed = 0;
  let first = 0n;
  let last = 0n;
  server.on(`message.${TOPIC.start}`, () => {
    received = 0;
    first = process.hrtime.bigint();
  });
  server.on(`message.${TOPIC.data}`, () => {
    received++;
    if (received === count) last = process.hrtime.bigint();
  });
  server.on(`message.${TOPIC.end}`, (_, clientId) => server.send(TOPIC.synced, received, clientId));
  if (!socketIpc) {
    server.handle(TOPIC.echo, (message) => {
      echoed++;
      return message;
    });
  }
  const serverErrors = [];
  await new Promise((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err) => server.once('close', () => reject(err)).close());
    server.listen();
  });
  server.on('error', (err) => serverErrors.push(err));
  const target = connectAddress(address, server.address());

  const { fork } = require('node:child_process');
  const child = fork(__filename, [BENCH_CLIENT], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let outcome;
  try {
    outcome = await new Promise((resolve, reject) => {
      let progress = -1;
      const watchdog = setInterval(() => {
        const now = received + echoed;
        if (now !== progress) {
          progress = now;
          return;
        }
        reject(failure('ERR_IPC_TIMEOUT', `the benchmark made no progress for ${STALL_MS / 1000} s (${received} of ${count} messages, ${echoed} of ${requests} requests)`));
      }, STALL_MS);
      const done = (fn) => (value) => {
        clearInterval(watchdog);
        fn(value);
      };
      const ok = done(resolve);
      const fail = done(reject);
      child.on('message', (m) => {
        if (m.error) fail(failure(m.error.code, m.error.message));
        else if (m.roundTrip !== undefined) ok(m);
      });
      child.on('exit', (code, signal) =>
        fail(failure('ERR_CHILD_CLOSED_BEFORE_REPLY', `the benchmark's client process exited (${signal || `code ${code}`}) before it finished`)),
      );
      child.send({
        address: target,
        secret: serverOptions.secret,
        tls: clientTls && { ...clientTls, ca: clientTls.ca && clientTls.ca.toString() },
        protocol: serverOptions.protocol,
        count,
        size,
        requests,
      });
    });
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
    await new Promise((resolve) => server.once('close', resolve).close());
  }
  if (serverErrors.length > 0) throw serverErrors[0];
  if (received !== count) throw failure('ERR_IPC_DISCONNECTED', `the server received ${received} of ${count} messages`);

  const seconds = Number(last - first) / 1e9;
  const result = {
    address: target,
    count,
    size,
    oneway: {
      messages: count,
      seconds,
      messagesPerSecond: seconds > 0 ? count / seconds : null,
      megabytesPerSecond: seconds > 0 ? (count * size) / seconds / 1e6 : null,
    },
    roundTrip: outcome.roundTrip,
  };
  process.stdout.write(`${values.json ? JSON.stringify(result) : benchTable(result, socketIpc)}\n`);
  return 0;
}

function benchTable(r, socketIpc) {
  const n = (value, digits = 0) =>
    value === null ? '—' : value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const rows = [
    ['one-way, client → server', `${n(r.oneway.messagesPerSecond)} msg/s`],
    ['', `${n(r.oneway.megabytesPerSecond, 1)} MB/s of payload`],
    ['', `${n(r.count)} messages in ${n(r.oneway.seconds, 3)} s`],
  ];
  if (r.roundTrip === null) {
    rows.push(['request round trip', socketIpc ? 'not supported by --protocol socket-ipc' : 'skipped (--requests 0)']);
  } else {
    rows.push(['request round trip', `p50 ${n(r.roundTrip.p50Us, 1)} µs   p99 ${n(r.roundTrip.p99Us, 1)} µs`]);
    rows.push(['', `${n(r.roundTrip.requests)} requests, one at a time`]);
  }
  const width = Math.max(...rows.map(([label]) => label.length));
  return [`${NAME} bench ${r.address}: ${n(r.count)} messages of ${n(r.size)} bytes`, ...rows.map(([label, value]) => `  ${label.padEnd(width)}   ${value}`)].join('\n');
}

/** Nearest-rank percentile of sorted numbers. */
function percentile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The client half of `bench`, in the child process: its settings come over the IPC channel. */
async function benchClient() {
  if (typeof process.send !== 'function') {
    throw usageError('ERR_INVALID_ARG_VALUE', `'${BENCH_CLIENT}' is internal to '${NAME} bench'`);
  }
  const config = await new Promise((resolve) => process.once('message', resolve));
  try {
    const { Client } = library();
    const options = { address: config.address, maxRetries: 3, retryDelay: 100 };
    if (config.secret !== undefined) options.secret = config.secret;
    if (config.tls) options.tls = config.tls;
    if (config.protocol !== undefined) options.protocol = config.protocol;
    const client = new Client(options);
    const errors = [];
    await new Promise((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
      client.connect();
    });
    client.on('error', (err) => errors.push(err));
    const payload = Buffer.alloc(config.size, 0x61);

    // One-way: 1000 messages per turn of the event loop, pausing while send() reports a backlog.
    client.send(TOPIC.start);
    for (let sent = 0; sent < config.count; ) {
      const end = Math.min(config.count, sent + 1000);
      for (; sent < end; sent++) client.send(TOPIC.data, payload);
      await new Promise(setImmediate);
      await client.drained();
      if (errors.length > 0) throw errors[0];
    }
    // Messages stay in order, so the answer to this one comes after the server saw them all.
    const synced = new Promise((resolve) => client.once(`message.${TOPIC.synced}`, resolve));
    client.send(TOPIC.end);
    await synced;

    let roundTrip = null;
    if (config.requests > 0) {
      // A few untimed requests first, so the timed ones do not include warming up.
      for (let i = 0; i < Math.min(50, config.requests); i++) await client.request(TOPIC.echo, payload);
      const latencies = [];
      for (let i = 0; i < config.requests; i++) {
        const start = process.hrtime.bigint();
        await client.request(TOPIC.echo, payload);
        latencies.push(Number(process.hrtime.bigint() - start) / 1000);
      }
      latencies.sort((a, b) => a - b);
      roundTrip = {
        requests: config.requests,
        p50Us: percentile(latencies, 0.5),
        p99Us: percentile(latencies, 0.99),
        meanUs: latencies.reduce((a, b) => a + b, 0) / latencies.length,
      };
    }
    await new Promise((resolve) => client.once('close', resolve).close());
    process.send({ roundTrip });
  } catch (err) {
    process.send({ error: { code: err.code || 'ERR_IPC_BENCH', message: err.message } });
    process.exitCode = EXIT_FAILURE;
  }
  process.disconnect();
  return process.exitCode || 0;
}

const RUN = { listen, send, request, bench };

// ----- entry -----

/** The library's advice, in the words of the command line: its flags, not its option names. */
function inFlags(message) {
  return String(message)
    .replace(/'options\.address'/g, '<address>')
    .replace(/options\.secret/g, `--secret (or ${SECRET_ENV})`)
    .replace(/\b(?:options\.)?tls\.(cert|key|ca|servername)\b/g, '--tls-$1')
    .replace(/options\.timeout \(or requestTimeout\)/g, '--timeout');
}

function report(err) {
  if (err === null || typeof err !== 'object' || typeof err.code !== 'string') {
    // Not an error this tool expects: a bug, so show where.
    process.stderr.write(`${NAME}: internal error: ${(err && err.stack) || String(err)}\n`);
    return EXIT_FAILURE;
  }
  let text = `${NAME}: ${err.code}: ${inFlags(err.message)}`;
  if (err.code === 'ERR_IPC_REMOTE' && err.remoteCode !== undefined) text += ` (remote code: ${err.remoteCode})`;
  process.stderr.write(`${text}\n`);
  if (err.usage) {
    process.stderr.write(`Run '${NAME}${err.command ? ` ${err.command}` : ''} --help' for usage.\n`);
    return EXIT_USAGE;
  }
  return EXIT_FAILURE;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status;
    },
    (err) => {
      process.exitCode = report(err);
    },
  );
}

module.exports = { main };
