// The e2e tests' web lab: three web pods (10.244.0.11-13:8080), a client pod, manifests for them,
// and a wait helper.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Lab, type Pod } from '../../pkg/lab/lab.js'
import { waitUntil } from './wait.js'

interface Teardown { teardown: (fn: () => Promise<void>) => void }

/** A lab with pods web-1..3 and a client pod, plus a temp dir; both go away at teardown. */
export async function webLab (t: Teardown): Promise<{ lab: Lab, dir: string, client: Pod }> {
  const lab = await Lab.create()
  const dir = await mkdtemp(join(tmpdir(), 'ferry-e2e-'))
  t.teardown(async () => { await lab.close(); await rm(dir, { recursive: true, force: true }) })
  for (let i = 1; i <= 3; i++) await lab.addPod(`web-${i}`, `10.244.0.${10 + i}`)
  const client = await lab.addPod('client', '10.244.0.50', [])
  return { lab, dir, client }
}

export interface SliceEndpoint { ip: string, node?: string, ready?: boolean }

/** An EndpointSlice document for Service demo/`service`: one port, endpoints on lab-node unless said. */
export function sliceYAML (o: { name: string, service: string, port: { name: string, port: number, protocol?: string }, endpoints: SliceEndpoint[], addressType?: 'IPv4' | 'IPv6' }): string {
  const eps = o.endpoints.map(e => {
    const ready = e.ready ?? true
    return `  - {addresses: ["${e.ip}"], nodeName: ${e.node ?? 'lab-node'}, conditions: {ready: ${String(ready)}, serving: ${String(ready)}}}\n`
  }).join('')
  return `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: ${o.name}, namespace: demo, labels: {kubernetes.io/service-name: ${o.service}}}
addressType: ${o.addressType ?? 'IPv4'}
ports: [{name: ${o.port.name}, port: ${o.port.port}, protocol: ${o.port.protocol ?? 'TCP'}}]
endpoints:${o.endpoints.length === 0 ? ' []' : ''}
${eps}`
}

/** Service demo/web: ClusterIP 10.96.0.10:80, NodePort 30080, over the given endpoint IPs on 8080. */
export function webManifests (ips: string[]): string {
  return `apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  type: NodePort
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 80, targetPort: 8080, nodePort: 30080}
---
${sliceYAML({ name: 'web-1', service: 'web', port: { name: 'http', port: 8080 }, endpoints: ips.map(ip => ({ ip })) })}`
}

/** Service demo/empty: ClusterIP 10.96.0.20:80 with no endpoints. */
export const EMPTY_SVC = `apiVersion: v1
kind: Service
metadata: {name: empty, namespace: demo}
spec:
  clusterIP: 10.96.0.20
  ports: [{port: 80}]
`

export { waitUntil } from './wait.js'

/** The proxy modes the end-to-end scenarios run over, one after the other. */
export const PROXY_MODES = ['iptables', 'nftables'] as const
export type LabProxyMode = typeof PROXY_MODES[number]

/** Every iptables rule in the lab's node namespace: IPv4 and IPv6, legacy and nft variants. */
export async function iptablesState (lab: Pick<Lab, 'sh'>): Promise<string> {
  return await lab.sh(['sh', '-c', 'for f in iptables ip6tables; do for v in legacy nft; do $f-$v-save 2>/dev/null; done; done; true'])
}

/** ferry's nftables tables (`ip ferry`, `ip6 ferry`) in the lab's node namespace, listed; '' when neither exists. */
export async function nftState (lab: Pick<Lab, 'sh'>): Promise<string> {
  return await lab.sh(['sh', '-c', 'nft list table ip ferry 2>/dev/null; nft list table ip6 ferry 2>/dev/null; true'])
}

/** Every rule ferry holds in the lab's node namespace, whichever mode wrote it (iptables saves, then nft tables). */
export async function anyProxyRules (lab: Pick<Lab, 'sh'>): Promise<string> {
  return await iptablesState(lab) + await nftState(lab)
}

/** What the kernel holds of `mode`'s rules: iptables-save output or the nft listing of ferry's tables. */
export async function proxyRules (lab: Pick<Lab, 'sh'>, mode: LabProxyMode): Promise<string> {
  return mode === 'iptables' ? await iptablesState(lab) : await nftState(lab)
}

/**
 * A firewall reload as the mode's admin would do it: for iptables, flush and delete every nat chain of
 * the variant ferry writes; for nftables, `nft flush ruleset` (every table goes).
 */
export async function flushProxyRules (lab: Pick<Lab, 'sh'>, mode: LabProxyMode): Promise<void> {
  const cmd = mode === 'iptables'
    ? 'v=$(iptables-legacy-save -t nat | grep -q FERRY- && echo legacy || echo nft); iptables-$v -t nat -F && iptables-$v -t nat -X'
    : 'nft flush ruleset'
  await lab.sh(['sh', '-c', cmd])
}

/**
 * Runs `flush`, then `probe` (true per URL that still answered) at once, until every probe fails.
 * ferryd's periodic check may repair the rules between the flush and a probe's first packet; a
 * `repairs()` count that went up tells that apart from a flush that broke nothing, and then it waits
 * for the repair and flushes again. Returns the time of the flush whose breakage was seen and the
 * repair count just before it, or undefined if none was seen.
 */
export async function flushUntilBroken (flush: () => Promise<void>, probe: () => Promise<boolean[]>, repairs: () => number, attempts = 3): Promise<{ at: number, repairsBefore: number } | undefined> {
  for (let i = 0; i < attempts; i++) {
    const repairsBefore = repairs()
    await flush()
    const at = Date.now()
    const answered = await probe()
    if (answered.every(ok => !ok)) return { at, repairsBefore }
    if (repairs() === repairsBefore) return undefined
    await waitUntil('the early repair is done', async () => (await probe()).every(Boolean))
  }
  return undefined
}
