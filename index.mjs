// ES module entry ("import" in package.json's exports map). It re-exports the CommonJS entry's own
// objects rather than a second copy of the library: `import { Server }` and
// `require('native-socket-ipc').Server` are the same class, so instanceof checks, prototype
// patches and the one native addon instance are shared by ESM and CJS code in one process.
import cjs from './index.js';

export const { Server, Client, Peer, localEndpoint } = cjs;
export default cjs;
