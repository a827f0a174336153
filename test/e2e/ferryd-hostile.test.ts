// ferryd against hostile manifest directories (issue 9, findings 1-5), as a user and an attacker would
// meet it: the real daemon in a lab netns, real files, real traffic through the rules it keeps.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, symlink, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startFerryd, type LabFerryd } from '../../pkg/lab/ferryd.js'
import { LAB } from '../../pkg/lab/lab.js'
import { aliasBomb, bigSelectorService } from '../helpers/hostile.js'
import { anyProxyRules, waitUntil, webLab, webManifests } from '../helpers/web-lab.js'

const ALL = ['10.244.0.11', '10.244.0.12', '10.244.0.13']
const ARGS = ['--node-name', 'lab-node', '--cluster-cidr', LAB.podCIDR, '--min-sync-period', '100ms', '--sync-period', '2s']
const dupWeb = (ip: string): string => `apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: demo}\nspec:\n  clusterIP: ${ip}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n`

async function rssMB (f: LabFerryd): Promise<number> {
  const status = await readFile(`/proc/${f.proc.pid ?? 0}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

t.setTimeout(360_000) // the big-file decode is slow on a loaded two-core machine

const count = (text: string, re: RegExp): number => text.split('\n').filter(l => re.test(l)).length

t.test('hostile files never stop ferryd; the rest is served', async t => {
  const { lab, dir, client } = await webLab(t)
  await writeFile(join(dir, 'web.yaml'), webManifests(ALL))
  await writeFile(join(dir, 'bomb.yaml'), aliasBomb())
  execFileSync('mkfifo', [join(dir, 'pipe.yaml')])

  let ferryd = startFerryd(lab, ['--manifests', dir, ...ARGS])
  t.teardown(async () => { await ferryd.stop('SIGKILL') })

  await t.test('an alias bomb and a FIFO at start-up are logged, and ferryd serves the rest', async t => {
    await ferryd.waitReady()
    t.ok((await lab.get('http://10.96.0.10/', client.ns)).ok, 'web answers')
    t.match(ferryd.logs(), /bomb\.yaml, document 1: .*alias/i)
    t.match(ferryd.logs(), /pipe\.yaml is a FIFO, not a regular file/)
  })

  await t.test('edits after the FIFO appeared are applied; symlinks to /dev/zero and a directory are reported once', async t => {
    await symlink('/dev/zero', join(dir, 'zero.yaml'))
    await mkdir(join(dir, 'sub'))
    await symlink(join(dir, 'sub'), join(dir, 'subdir.yaml'))
    await writeFile(join(dir, 'web.yaml'), webManifests(['10.244.0.12']))
    await t.resolves(waitUntil('only web-2 answers', async () => {
      const s = await lab.spread('http://10.96.0.10/', 6, client.ns)
      return s.size === 1 && s.get('web-2') === 6
    }), 'the edit reached the kernel')
    await new Promise(resolve => setTimeout(resolve, 5000)) // two polls and more
    t.equal(count(ferryd.logs(), /zero\.yaml is a character device/), 1, '/dev/zero reported once')
    t.equal(count(ferryd.logs(), /subdir\.yaml is a directory/), 1, 'the directory reported once')
    t.equal(count(ferryd.logs(), /pipe\.yaml is a FIFO/), 1, 'the FIFO reported once')
    const rss = await rssMB(ferryd)
    t.ok(rss < 200, `RSS ${rss.toFixed(0)} MB: nothing read from /dev/zero`)
    const m = (await ferryd.http('/metrics')).body
    t.match(m, /^ferry_source_rejected_files 4$/m, 'bomb, FIFO, /dev/zero and the directory')
    t.match(m, /^ferry_source_errors_total\{code="FERRY_ERR_LIMIT"\} 4$/m)
  })

  await t.test('a big file decodes off the event loop: probes answer and other edits apply meanwhile', async t => {
    await writeFile(join(dir, 'big.yaml'), bigSelectorService(100_000)) // ~2.4 MB of YAML: seconds of parsing
    await new Promise(resolve => setTimeout(resolve, 300))
    await writeFile(join(dir, 'web.yaml'), webManifests(ALL))
    let bigLoadedFirst = false
    await t.resolves(waitUntil('all three answer again', async () => {
      const hz = await ferryd.http('/healthz')
      if (hz.status !== 200) throw new Error(`/healthz answered ${hz.status} during the decode`)
      if ((await anyProxyRules(lab)).includes('10.96.77.7')) bigLoadedFirst = true
      return (await lab.spread('http://10.96.0.10/', 45, client.ns)).size === 3
    }, 30_000), 'the edit to web.yaml did not wait for big.yaml')
    t.notOk(bigLoadedFirst, 'web.yaml was applied before big.yaml finished decoding')
    t.notMatch(ferryd.logs(), /big\.yaml/, 'big.yaml decoded without an error')
    await t.resolves(waitUntil('big.yaml loaded', async () => (await anyProxyRules(lab)).includes('10.96.77.7'), 120_000))
    await unlink(join(dir, 'big.yaml'))
  })

  await t.test('SIGTERM with a FIFO in the directory exits at once', async t => {
    t.equal(await ferryd.stop(), 0)
  })

  await t.test('duplicates: the same winner at run time and after a restart, shown in /debug/state and a metric', async t => {
    await unlink(join(dir, 'pipe.yaml'))
    ferryd = startFerryd(lab, ['--manifests', dir, ...ARGS])
    await ferryd.waitReady()
    t.ok((await lab.get('http://10.96.0.10/', client.ns)).ok)
    await writeFile(join(dir, 'aa-dup.yaml'), dupWeb('10.96.0.30'))
    await t.resolves(waitUntil('the first definition in file-name order serves', async () => (await lab.get('http://10.96.0.30/', client.ns, 1)).ok))
    t.notOk((await lab.get('http://10.96.0.10/', client.ns, 1)).ok, 'the other definition is not served')
    const state = JSON.parse((await ferryd.http('/debug/state')).body) as { source: { conflicts: Array<{ key: string, kept: string, ignored: string[] }> } }
    t.match(state.source.conflicts, [{ key: 'Service/demo/web', kept: /aa-dup\.yaml$/, ignored: [/web\.yaml$/] }])
    t.match((await ferryd.http('/metrics')).body, /^ferry_source_duplicate_objects 1$/m)
    t.equal(await ferryd.stop(), 0)
    ferryd = startFerryd(lab, ['--manifests', dir, ...ARGS])
    await ferryd.waitReady()
    t.ok((await lab.get('http://10.96.0.30/', client.ns)).ok, 'after a restart the same definition serves')
    t.notOk((await lab.get('http://10.96.0.10/', client.ns, 1)).ok)
    await unlink(join(dir, 'aa-dup.yaml'))
    await t.resolves(waitUntil('web.yaml serves again', async () => (await lab.get('http://10.96.0.10/', client.ns, 1)).ok))
    t.equal(await ferryd.stop(), 0)
  })
})
