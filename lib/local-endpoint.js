'use strict';
// One name for a local endpoint on every platform: localEndpoint('my-app') is a named pipe on
// Windows and a socket file in a directory only this user can write elsewhere, so code that
// runs in an Electron main process and its backend needs no `process.platform` branch. Every
// process of one user with the same environment gets the same answer.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ipcError, typeError } = require('./errors');

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

/**
 * Windows: `\\.\pipe\<name>-<user>` (pipe names are machine-wide; the user keeps two users'
 * instances of one app apart).
 * Linux with $XDG_RUNTIME_DIR (a systemd login): `$XDG_RUNTIME_DIR/<name>.sock`.
 * Otherwise (macOS, containers): `<os.tmpdir()>/native-socket-ipc-<uid>/<name>.sock`; the
 * directory is created with mode 0700, and refused if another user owns it or others may write
 * to it, since whoever controls the directory could stand in for the server.
 */
function localEndpoint(name) {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw typeError(
      'ERR_INVALID_ARG_VALUE',
      `localEndpoint(name): the name must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-' (e.g. 'my-app'), got ${JSON.stringify(name)}`,
    );
  }
  if (process.platform === 'win32') return `\\\\.\\pipe\\${name}-${windowsUser()}`;
  const runtime = process.env.XDG_RUNTIME_DIR;
  if (process.platform === 'linux' && runtime && path.isAbsolute(runtime) && isOwnDirectory(runtime)) {
    return path.join(runtime, `${name}.sock`);
  }
  return path.join(privateDirectory(), `${name}.sock`);
}

function windowsUser() {
  let user;
  try {
    user = os.userInfo().username;
  } catch {
    user = process.env.USERNAME || 'user';
  }
  return user.replace(/[^A-Za-z0-9._-]/g, '_');
}

function isOwnDirectory(dir) {
  try {
    const stat = fs.statSync(dir);
    return stat.isDirectory() && stat.uid === process.getuid();
  } catch {
    return false;
  }
}

/** `<tmpdir>/native-socket-ipc-<uid>`, made if missing and checked either way. */
function privateDirectory() {
  const uid = process.getuid();
  const dir = path.join(os.tmpdir(), `native-socket-ipc-${uid}`);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (err.code !== 'EEXIST') throw err;
  }
  const stat = fs.lstatSync(dir);
  if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o022) !== 0) {
    throw ipcError(
      'ERR_IPC_UNSAFE_DIRECTORY',
      `localEndpoint(): ${dir} is not a directory that only this user (uid ${uid}) can write to${stat.isDirectory() ? ` (owner uid ${stat.uid}, mode ${(stat.mode & 0o777).toString(8)})` : ''}; remove it, or pass an explicit socket path in a directory of your own`,
      { path: dir },
    );
  }
  return dir;
}

module.exports = { localEndpoint };
