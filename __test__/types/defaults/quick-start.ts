// The typed quick start, compiled by __test__/types-defaults.test.js in a project whose tsconfig
// sets nothing but "strict", with TypeScript 5 and 6 (not by \`npm run test:types\`, whose
// tsconfig is stricter and names "node" in "types").
import { Server, Client, localEndpoint } from 'native-socket-ipc';
type Messages = { hello: { name: string }; greeting: string };
type Requests = { add: { request: [number, number]; reply: number } };
const socketFile = localEndpoint('typed');
const server = new Server<Messages, Requests>({ socketFile });
server.on('message.hello', (message, clientId) => server.send('greeting', `Hello, ${message.name}!`, clientId));
server.handle('add', ([a, b]) => a + b);
server.listen();
const client = new Client<Messages, Requests>({ socketFile });
client.on('message.greeting', (g) => console.log(g.toUpperCase()));
async function main() { client.connect(); const sum: number = await client.request('add', [2, 3]); console.log(sum); }
main();
