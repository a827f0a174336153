// ferryctl -f reads files the way ferryd does: a FIFO or device named on the command line is refused
// at once (not waited on), and JSON goes through JSON.parse.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../../cmd/ferryctl.js'

t.test('apply -f of a FIFO or /dev/zero fails with the file named, before any etcd call', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'ferryctl-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  execFileSync('mkfifo', [join(dir, 'pipe.yaml')])
  await writeFile(join(dir, 'n.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n' }, spec: {} }))
  for (const [path, why] of [[join(dir, 'pipe.yaml'), /pipe\.yaml is a FIFO, not a regular file/], ['/dev/zero', /\/dev\/zero is a character device/]] as const) {
    let err = ''
    const code = await main(['apply', '-f', path, '--etcd-endpoints', 'http://127.0.0.1:1'], { env: {}, stdout: () => {}, stderr: s => { err += s } })
    t.equal(code, 1)
    t.match(err, why)
    t.match(err, /nothing was written/)
  }
})
