// Seeded random service ports for the tracer batteries (plan against rendered rules): every protocol,
// policy, entry kind, terminating state and, when asked, ClientIP affinity.
import { svcInfo, localEp, remoteEp, categorized } from '../../pkg/proxy/iptables/fixtures.js'
import type { DesiredServicePort, EndpointInfo } from '../../pkg/proxy/types.js'

export interface GenerateOptions {
  readonly seed: number
  readonly count: number
  /** Service names are `${prefix}${i}`. */
  readonly prefix: string
  /** Each service gets 0 .. endpointsBelow - 1 endpoints. */
  readonly endpointsBelow: number
  /** One in five services gets ClientIP affinity (a renderer whose tracer models it). */
  readonly affinity: boolean
}

export function generatedServices (o: GenerateOptions): DesiredServicePort[] {
  let s = o.seed
  const rnd = (n: number): number => { s = (s * 1103515245 + 12345) % 2147483648; return s % n }
  const sps: DesiredServicePort[] = []
  for (let i = 0; i < o.count; i++) {
    const eps: EndpointInfo[] = []
    const n = rnd(o.endpointsBelow)
    for (let j = 0; j < n; j++) {
      const ip = `10.180.${i}.${j + 1}`
      const kind = rnd(5)
      const cond = kind === 3 ? { ready: false, serving: true, terminating: true } : kind === 4 ? { ready: false, serving: false, terminating: true } : {}
      eps.push(rnd(2) === 0 ? localEp(ip, 8080, cond) : remoteEp(ip, 8080, cond))
    }
    const info = svcInfo({
      name: `${o.prefix}${i}`,
      clusterIP: `172.30.2.${i + 1}`,
      protocol: rnd(4) === 0 ? 'UDP' : 'TCP',
      nodePort: rnd(2) === 0 ? 31000 + i : 0,
      externalIPs: rnd(4) === 0 ? [`192.168.99.${i + 1}`] : [],
      loadBalancerIPs: rnd(3) === 0 ? [`198.51.100.${i + 1}`] : [],
      loadBalancerSourceRanges: rnd(3) === 0 ? ['203.0.113.0/25'] : [],
      externalPolicyLocal: rnd(2) === 0,
      internalPolicyLocal: rnd(4) === 0,
      ...(o.affinity ? { stickyMaxAgeSeconds: rnd(5) === 0 ? 600 : 0 } : {}),
    })
    sps.push(categorized(info, eps))
  }
  return sps
}
