// The web server the lab's pods run: answers every HTTP request and UDP datagram with its pod name and the
// client's address, so a test or the demo sees which pod answered and whether the source was rewritten.
import type { ChildProcess } from 'node:child_process'

/** Dual-stack, one HTTP and one UDP listener per port given after the pod name; prints "ready". */
export const POD_SERVER = `
const http = require('http'); const dgram = require('dgram'); const name = process.argv[1];
const addr = a => a.replace(/^::ffff:/, '');
for (const p of process.argv.slice(2).map(Number)) {
  http.createServer((q, s) => { s.setHeader('connection', 'close'); s.end(name + ' ' + addr(q.socket.remoteAddress) + '\\n') }).listen(p, '::');
  const u = dgram.createSocket('udp6'); u.on('message', (m, r) => u.send(name + ' ' + addr(r.address) + '\\n', r.port, r.address)); u.bind(p, '::');
}
process.stdout.write('ready\\n');
`

/** Starts POD_SERVER as `name` inside `ns` (through `spawnIn`, which owns the process) and waits until it listens. */
export async function startPodServer (spawnIn: (argv: string[], ns: string) => ChildProcess, name: string, ns: string, ports: number[]): Promise<ChildProcess> {
  const child = spawnIn(['node', '-e', POD_SERVER, name, ...ports.map(String)], ns)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`pod ${name}: server did not start`)) }, 10_000)
    child.stdout?.once('data', () => { clearTimeout(timer); resolve() })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`pod ${name}: server exited ${code ?? ''}`)) })
  })
  return child
}
