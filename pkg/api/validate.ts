// Validation turns untrusted decoded YAML/JSON into typed, normalized objects, or throws one
// FERRY_ERR_INVALID_OBJECT naming the object and every failing field path.
import { FerryError } from '../errors/errors.js'
import { isPlainIPv4, parseCIDR, parseIP } from '../net/ip.js'
import { fit } from '../mem/fit.js'
import type {
  Endpoint, EndpointPort, EndpointSlice, KObject, Kind, LoadBalancerIngress, Node, ObjectMeta, Pod, Protocol,
  Service, ServicePort, ServiceSpec, ServiceType, TrafficPolicy,
} from './types.js'

type Raw = Record<string, unknown>

const API_VERSIONS: Record<Kind, string> = {
  Service: 'v1', EndpointSlice: 'discovery.k8s.io/v1', Node: 'v1', Pod: 'v1',
}
const PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP']
const SERVICE_TYPES: readonly ServiceType[] = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']
const POLICIES: readonly TrafficPolicy[] = ['Cluster', 'Local']
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/
const IANA_SVC_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
export const DEFAULT_AFFINITY_TIMEOUT = 10800

/** Collects field errors so one message reports them all. */
class FieldErrors {
  readonly list: string[] = []
  add (path: string, value: unknown, why: string): void {
    this.list.push(`${path}: Invalid value: ${JSON.stringify(value)}: ${why}`)
  }

  required (path: string): void { this.list.push(`${path}: Required value`) }
}

function isRecord (v: unknown): v is Raw {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function str (o: Raw, key: string, path: string, errs: FieldErrors): string | undefined {
  const v = o[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') { errs.add(`${path}.${key}`, v, 'must be a string'); return undefined }
  return v
}

function bool (o: Raw, key: string, path: string, errs: FieldErrors): boolean | undefined {
  const v = o[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') { errs.add(`${path}.${key}`, v, 'must be a boolean'); return undefined }
  return v
}

function int (o: Raw, key: string, path: string, errs: FieldErrors, min: number, max: number): number | undefined {
  const v = o[key]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    errs.add(`${path}.${key}`, v, `must be an integer between ${min} and ${max}, inclusive`)
    return undefined
  }
  return v
}

function list (o: Raw, key: string, path: string, errs: FieldErrors): unknown[] {
  const v = o[key]
  if (v === undefined || v === null) return []
  if (!Array.isArray(v)) { errs.add(`${path}.${key}`, v, 'must be a list'); return [] }
  return v
}

function stringMap (o: Raw, key: string, path: string, errs: FieldErrors): Record<string, string> | undefined {
  const v = o[key]
  if (v === undefined || v === null) return undefined
  // One pass that checks and copies: labels are on every object of a 10k-Service start.
  if (isRecord(v)) {
    const out: Record<string, string> = {}
    let ok = true
    for (const k in v) {
      if (!Object.hasOwn(v, k)) continue
      const x = v[k]
      if (typeof x !== 'string' || k === '__proto__') { ok = false; break }
      out[k] = x
    }
    if (ok) return out
    if (Object.values(v).every(x => typeof x === 'string')) return { ...(v as Record<string, string>) } // a "__proto__" key
  }
  errs.add(`${path}.${key}`, v, 'must be a map of strings')
  return undefined
}

function oneOf<T extends string> (o: Raw, key: string, path: string, errs: FieldErrors, allowed: readonly T[]): T | undefined {
  const v = str(o, key, path, errs)
  if (v === undefined) return undefined
  if (!(allowed as readonly string[]).includes(v)) {
    errs.add(`${path}.${key}`, v, `supported values: ${allowed.map(a => `"${a}"`).join(', ')}`)
    return undefined
  }
  return v as T
}

function ipList (o: Raw, key: string, path: string, errs: FieldErrors): string[] {
  const out: string[] = []
  list(o, key, path, errs).forEach((v, i) => {
    const p = typeof v === 'string' ? parseIP(v) : null
    if (p === null) errs.add(`${path}.${key}[${i}]`, v, 'must be a valid IP address')
    else out.push(p.ip)
  })
  return fit(out)
}

function meta (raw: Raw, kind: Kind, namespaced: boolean, errs: FieldErrors): ObjectMeta {
  const m = raw.metadata
  if (!isRecord(m)) { errs.required('metadata'); return { name: '' } }
  const name = str(m, 'name', 'metadata', errs)
  const nameRe = kind === 'Service' ? DNS1035_LABEL : DNS1123_SUBDOMAIN
  if (name === undefined || name === '') errs.required('metadata.name')
  else if (name.length > 253 || !nameRe.test(name) || (kind === 'Service' && name.length > 63)) {
    errs.add('metadata.name', name, kind === 'Service' ? 'must be a DNS-1035 label' : 'must be a DNS-1123 subdomain')
  }
  const out: ObjectMeta = { name: name ?? '' }
  if (namespaced) {
    const ns = str(m, 'namespace', 'metadata', errs) ?? 'default'
    if (!DNS1123_LABEL.test(ns) || ns.length > 63) errs.add('metadata.namespace', ns, 'must be a DNS-1123 label')
    out.namespace = ns
  }
  const labels = stringMap(m, 'labels', 'metadata', errs)
  if (labels !== undefined) out.labels = labels
  const annotations = stringMap(m, 'annotations', 'metadata', errs)
  if (annotations !== undefined) out.annotations = annotations
  const uid = str(m, 'uid', 'metadata', errs)
  if (uid !== undefined) out.uid = uid
  const resourceVersion = str(m, 'resourceVersion', 'metadata', errs)
  if (resourceVersion !== undefined) out.resourceVersion = resourceVersion
  const deletionTimestamp = str(m, 'deletionTimestamp', 'metadata', errs)
  if (deletionTimestamp !== undefined) out.deletionTimestamp = deletionTimestamp
  return out
}

function servicePorts (spec: Raw, type: ServiceType, errs: FieldErrors): ServicePort[] {
  const ports: ServicePort[] = []
  const raws = list(spec, 'ports', 'spec', errs)
  const seenNames = new Set<string>()
  const seenPorts = new Set<string>()
  raws.forEach((r, i) => {
    const path = `spec.ports[${i}]`
    if (!isRecord(r)) { errs.add(path, r, 'must be an object'); return }
    const name = str(r, 'name', path, errs)
    if (name !== undefined && name !== '') {
      if (!IANA_SVC_NAME.test(name) || name.length > 63) errs.add(`${path}.name`, name, 'must be a DNS-1123 label')
      if (seenNames.has(name)) errs.add(`${path}.name`, name, 'duplicate port name')
      seenNames.add(name)
    } else if (raws.length > 1) errs.required(`${path}.name`)
    const protocol = oneOf(r, 'protocol', path, errs, PROTOCOLS) ?? 'TCP'
    const port = int(r, 'port', path, errs, 1, 65535)
    if (port === undefined && r.port === undefined) errs.required(`${path}.port`)
    const nodePort = int(r, 'nodePort', path, errs, 1, 65535)
    if (nodePort !== undefined && type !== 'NodePort' && type !== 'LoadBalancer') {
      errs.add(`${path}.nodePort`, nodePort, 'may not be used when `type` is not \'NodePort\' or \'LoadBalancer\'')
    }
    const key = `${port ?? ''}/${protocol}`
    if (port !== undefined && seenPorts.has(key)) errs.add(`${path}.port`, port, `duplicate port ${key}`)
    seenPorts.add(key)
    let targetPort: number | string | undefined
    if (typeof r.targetPort === 'number') targetPort = int(r, 'targetPort', path, errs, 1, 65535)
    else if (r.targetPort !== undefined) targetPort = str(r, 'targetPort', path, errs)
    const p: ServicePort = { protocol, port: port ?? 0 }
    if (name !== undefined && name !== '') p.name = name
    if (nodePort !== undefined) p.nodePort = nodePort
    if (targetPort !== undefined) p.targetPort = targetPort
    ports.push(p)
  })
  return fit(ports)
}

function validateService (raw: Raw, errs: FieldErrors): Service {
  const metadata = meta(raw, 'Service', true, errs) as Service['metadata']
  const s = isRecord(raw.spec) ? raw.spec : {}
  if (!isRecord(raw.spec)) errs.required('spec')
  const type = oneOf(s, 'type', 'spec', errs, SERVICE_TYPES) ?? 'ClusterIP'
  const spec: ServiceSpec = { type, ports: servicePorts(s, type, errs), sessionAffinity: 'None' }

  const clusterIP = str(s, 'clusterIP', 'spec', errs)
  if (clusterIP !== undefined && clusterIP !== '' && clusterIP !== 'None') {
    const ip = parseIP(clusterIP)
    if (ip === null) errs.add('spec.clusterIP', clusterIP, 'must be a valid IP address, "None" or empty')
    else spec.clusterIP = ip.ip
  } else if (clusterIP !== undefined) spec.clusterIP = clusterIP
  const clusterIPs = list(s, 'clusterIPs', 'spec', errs)
  if (clusterIPs.length > 0) {
    spec.clusterIPs = clusterIPs.map((v, i) => {
      if (v === 'None') return v
      const ip = typeof v === 'string' ? parseIP(v) : null
      if (ip === null) { errs.add(`spec.clusterIPs[${i}]`, v, 'must be a valid IP address or "None"'); return '' }
      return ip.ip
    })
    // An empty clusterIP is unset: the API server then copies clusterIPs[0] (Helm often writes "").
    if (spec.clusterIP === undefined || spec.clusterIP === '') spec.clusterIP = spec.clusterIPs[0]
    else if (spec.clusterIPs[0] !== spec.clusterIP) errs.add('spec.clusterIPs[0]', clusterIPs[0], 'must match spec.clusterIP')
  }
  if (type !== 'ExternalName' && spec.clusterIP !== 'None' && spec.ports.length === 0) {
    errs.required('spec.ports')
  }
  const externalIPs = ipList(s, 'externalIPs', 'spec', errs)
  if (externalIPs.length > 0) spec.externalIPs = externalIPs
  const externalName = str(s, 'externalName', 'spec', errs)
  if (type === 'ExternalName') {
    if (externalName === undefined || externalName === '') errs.required('spec.externalName')
    else if (!DNS1123_SUBDOMAIN.test(externalName.toLowerCase().replace(/\.$/, ''))) errs.add('spec.externalName', externalName, 'must be a DNS-1123 subdomain')
  }
  if (externalName !== undefined) spec.externalName = externalName
  spec.sessionAffinity = oneOf(s, 'sessionAffinity', 'spec', errs, ['None', 'ClientIP'] as const) ?? 'None'
  if (spec.sessionAffinity === 'ClientIP') {
    let timeoutSeconds = DEFAULT_AFFINITY_TIMEOUT
    const cfg = s.sessionAffinityConfig
    if (isRecord(cfg) && isRecord(cfg.clientIP)) {
      timeoutSeconds = int(cfg.clientIP, 'timeoutSeconds', 'spec.sessionAffinityConfig.clientIP', errs, 1, 86400) ?? DEFAULT_AFFINITY_TIMEOUT
    }
    spec.sessionAffinityConfig = { clientIP: { timeoutSeconds } }
  }
  const etp = oneOf(s, 'externalTrafficPolicy', 'spec', errs, POLICIES)
  if (etp !== undefined) {
    if (type === 'NodePort' || type === 'LoadBalancer' || externalIPs.length > 0) spec.externalTrafficPolicy = etp
    else if (etp === 'Local') errs.add('spec.externalTrafficPolicy', etp, 'may only be set for externally-accessible services')
  } else if (type === 'NodePort' || type === 'LoadBalancer') spec.externalTrafficPolicy = 'Cluster'
  const itp = oneOf(s, 'internalTrafficPolicy', 'spec', errs, POLICIES)
  if (type !== 'ExternalName') spec.internalTrafficPolicy = itp ?? 'Cluster'
  const hc = int(s, 'healthCheckNodePort', 'spec', errs, 1, 65535)
  if (hc !== undefined) {
    if (type !== 'LoadBalancer' || spec.externalTrafficPolicy !== 'Local') {
      errs.add('spec.healthCheckNodePort', hc, 'may only be set when type is LoadBalancer and externalTrafficPolicy is Local')
    } else spec.healthCheckNodePort = hc
  }
  const ranges: string[] = []
  list(s, 'loadBalancerSourceRanges', 'spec', errs).forEach((v, i) => {
    const c = typeof v === 'string' ? parseCIDR(v) : null
    if (c === null) errs.add(`spec.loadBalancerSourceRanges[${i}]`, v, 'must be a valid CIDR')
    else ranges.push(c.text)
  })
  if (ranges.length > 0) spec.loadBalancerSourceRanges = fit(ranges)
  const selector = stringMap(s, 'selector', 'spec', errs)
  if (selector !== undefined) spec.selector = selector
  const families = list(s, 'ipFamilies', 'spec', errs)
  if (families.length > 0) {
    spec.ipFamilies = []
    families.forEach((f, i) => {
      if (f === 'IPv4' || f === 'IPv6') spec.ipFamilies?.push(f)
      else errs.add(`spec.ipFamilies[${i}]`, f, 'supported values: "IPv4", "IPv6"')
    })
  }
  const td = str(s, 'trafficDistribution', 'spec', errs)
  if (td !== undefined) spec.trafficDistribution = td
  const pnra = bool(s, 'publishNotReadyAddresses', 'spec', errs)
  if (pnra !== undefined) spec.publishNotReadyAddresses = pnra

  const svc: Service = { apiVersion: 'v1', kind: 'Service', metadata, spec }
  const status = raw.status
  if (isRecord(status) && isRecord(status.loadBalancer)) {
    const ingress: LoadBalancerIngress[] = []
    list(status.loadBalancer, 'ingress', 'status.loadBalancer', errs).forEach((r, i) => {
      const path = `status.loadBalancer.ingress[${i}]`
      if (!isRecord(r)) { errs.add(path, r, 'must be an object'); return }
      const ing: LoadBalancerIngress = {}
      const ip = str(r, 'ip', path, errs)
      if (ip !== undefined) {
        const p = parseIP(ip)
        if (p === null) errs.add(`${path}.ip`, ip, 'must be a valid IP address')
        else ing.ip = p.ip
      }
      const hostname = str(r, 'hostname', path, errs)
      if (hostname !== undefined) ing.hostname = hostname
      const ipMode = oneOf(r, 'ipMode', path, errs, ['VIP', 'Proxy'] as const)
      if (ipMode !== undefined) ing.ipMode = ipMode
      ingress.push(ing)
    })
    svc.status = { loadBalancer: { ingress: fit(ingress) } }
  }
  return svc
}

/**
 * An endpoint's addresses, checked against the slice's addressType. A list of canonical IPv4 texts (the
 * usual case) is kept as decoded: JSON.parse made it at its exact length.
 */
function endpointAddresses (r: Raw, i: number, addressType: EndpointSlice['addressType'] | undefined, errs: FieldErrors): string[] {
  const raw = r.addresses
  if (Array.isArray(raw) && raw.length > 0 && addressType !== 'FQDN' && addressType !== 'IPv6' && raw.every(isCanonicalIPv4)) return raw as string[]
  const path = `endpoints[${i}]`
  const addrs = list(r, 'addresses', path, errs)
  if (addrs.length === 0) errs.required(`${path}.addresses`)
  const addresses: string[] = []
  addrs.forEach((a, j) => {
    if (addressType === 'FQDN') {
      if (typeof a !== 'string' || !DNS1123_SUBDOMAIN.test(a)) errs.add(`${path}.addresses[${j}]`, a, 'must be a DNS-1123 subdomain')
      else addresses.push(a)
      return
    }
    const ip = typeof a === 'string' ? parseIP(a) : null
    if (ip === null) errs.add(`${path}.addresses[${j}]`, a, 'must be a valid IP address')
    else if (addressType !== undefined && ip.family !== addressType) errs.add(`${path}.addresses[${j}]`, a, `must be an ${addressType} address`)
    else addresses.push(ip.ip)
  })
  return fit(addresses)
}

function isCanonicalIPv4 (a: unknown): boolean {
  return typeof a === 'string' && isPlainIPv4(a)
}

function validateEndpointSlice (raw: Raw, errs: FieldErrors): EndpointSlice {
  const metadata = meta(raw, 'EndpointSlice', true, errs) as EndpointSlice['metadata']
  const addressType = oneOf(raw, 'addressType', '', errs, ['IPv4', 'IPv6', 'FQDN'] as const)
  if (addressType === undefined && raw.addressType === undefined) errs.required('addressType')
  const raws = list(raw, 'endpoints', '', errs)
  const endpoints: Endpoint[] = []
  // Field paths are built only for an error: this loop runs 50k times in a 10k-Service start.
  for (let i = 0; i < raws.length; i++) {
    const r = raws[i]
    if (!isRecord(r)) { errs.add(`endpoints[${i}]`, r, 'must be an object'); continue }
    const ep: Endpoint = { addresses: endpointAddresses(r, i, addressType, errs) }
    if (isRecord(r.conditions)) {
      const c = r.conditions
      const conditions: NonNullable<Endpoint['conditions']> = {}
      const ready = c.ready
      if (typeof ready === 'boolean') conditions.ready = ready
      else if (ready !== undefined && ready !== null) bool(c, 'ready', `endpoints[${i}].conditions`, errs)
      const serving = c.serving
      if (typeof serving === 'boolean') conditions.serving = serving
      else if (serving !== undefined && serving !== null) bool(c, 'serving', `endpoints[${i}].conditions`, errs)
      const terminating = c.terminating
      if (typeof terminating === 'boolean') conditions.terminating = terminating
      else if (terminating !== undefined && terminating !== null) bool(c, 'terminating', `endpoints[${i}].conditions`, errs)
      ep.conditions = conditions
    }
    const hostname = r.hostname
    if (typeof hostname === 'string') ep.hostname = hostname
    else if (hostname !== undefined && hostname !== null) str(r, 'hostname', `endpoints[${i}]`, errs)
    const nodeName = r.nodeName
    if (typeof nodeName === 'string') ep.nodeName = nodeName
    else if (nodeName !== undefined && nodeName !== null) str(r, 'nodeName', `endpoints[${i}]`, errs)
    const zone = r.zone
    if (typeof zone === 'string') ep.zone = zone
    else if (zone !== undefined && zone !== null) str(r, 'zone', `endpoints[${i}]`, errs)
    if (ep.hostname !== undefined && !DNS1123_LABEL.test(ep.hostname)) errs.add(`endpoints[${i}].hostname`, ep.hostname, 'must be a DNS-1123 label')
    if (isRecord(r.hints)) {
      const path = `endpoints[${i}]`
      const named = (key: string): Array<{ name: string }> => list(r.hints as Raw, key, `${path}.hints`, errs).flatMap((h, j) => {
        if (isRecord(h) && typeof h.name === 'string' && h.name !== '') return [{ name: h.name }]
        errs.add(`${path}.hints.${key}[${j}].name`, h, 'must be a non-empty string')
        return []
      })
      ep.hints = { forZones: named('forZones'), forNodes: named('forNodes') }
    }
    if (isRecord(r.targetRef)) {
      const t = r.targetRef
      ep.targetRef = {}
      for (const k of ['kind', 'namespace', 'name', 'uid'] as const) {
        const v = str(t, k, `endpoints[${i}].targetRef`, errs)
        if (v !== undefined) ep.targetRef[k] = v
      }
    }
    endpoints.push(ep)
  }
  const ports: EndpointPort[] = []
  list(raw, 'ports', '', errs).forEach((r, i) => {
    const path = `ports[${i}]`
    if (!isRecord(r)) { errs.add(path, r, 'must be an object'); return }
    const p: EndpointPort = { protocol: oneOf(r, 'protocol', path, errs, PROTOCOLS) ?? 'TCP' }
    const name = str(r, 'name', path, errs)
    if (name !== undefined && name !== '') p.name = name
    const port = int(r, 'port', path, errs, 1, 65535)
    if (port !== undefined) p.port = port
    const app = str(r, 'appProtocol', path, errs)
    if (app !== undefined) p.appProtocol = app
    ports.push(p)
  })
  return { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata, addressType: addressType ?? 'IPv4', endpoints: fit(endpoints), ports: fit(ports) }
}

function validateNode (raw: Raw, errs: FieldErrors): Node {
  const metadata = meta(raw, 'Node', false, errs)
  const s = isRecord(raw.spec) ? raw.spec : {}
  const spec: Node['spec'] = {}
  const podCIDR = str(s, 'podCIDR', 'spec', errs)
  if (podCIDR !== undefined) {
    const c = parseCIDR(podCIDR)
    if (c === null) errs.add('spec.podCIDR', podCIDR, 'must be a valid CIDR')
    else spec.podCIDR = c.text
  }
  const cidrs = list(s, 'podCIDRs', 'spec', errs).flatMap((v, i) => {
    const c = typeof v === 'string' ? parseCIDR(v) : null
    if (c === null) { errs.add(`spec.podCIDRs[${i}]`, v, 'must be a valid CIDR'); return [] }
    return [c.text]
  })
  if (cidrs.length > 0) spec.podCIDRs = cidrs
  const taints = list(s, 'taints', 'spec', errs).flatMap((t, i) => {
    if (isRecord(t) && typeof t.key === 'string' && typeof t.effect === 'string') {
      return [{ key: t.key, effect: t.effect, ...(typeof t.value === 'string' ? { value: t.value } : {}) }]
    }
    errs.add(`spec.taints[${i}]`, t, 'must have string key and effect')
    return []
  })
  if (taints.length > 0) spec.taints = taints
  const node: Node = { apiVersion: 'v1', kind: 'Node', metadata, spec }
  if (isRecord(raw.status)) {
    const addresses = list(raw.status, 'addresses', 'status', errs).flatMap((a, i) => {
      if (isRecord(a) && typeof a.type === 'string' && typeof a.address === 'string') return [{ type: a.type, address: a.address }]
      errs.add(`status.addresses[${i}]`, a, 'must have string type and address')
      return []
    })
    node.status = { addresses }
  }
  return node
}

function validatePod (raw: Raw, errs: FieldErrors): Pod {
  const metadata = meta(raw, 'Pod', true, errs) as Pod['metadata']
  const s = isRecord(raw.spec) ? raw.spec : {}
  const spec: Pod['spec'] = {}
  for (const k of ['nodeName', 'hostname', 'subdomain'] as const) {
    const v = str(s, k, 'spec', errs)
    if (v !== undefined) spec[k] = v
  }
  const hostNetwork = bool(s, 'hostNetwork', 'spec', errs)
  if (hostNetwork !== undefined) spec.hostNetwork = hostNetwork
  const pod: Pod = { apiVersion: 'v1', kind: 'Pod', metadata, spec }
  if (isRecord(raw.status)) {
    const st: NonNullable<Pod['status']> = {}
    const podIP = str(raw.status, 'podIP', 'status', errs)
    if (podIP !== undefined) {
      const p = parseIP(podIP)
      if (p === null) errs.add('status.podIP', podIP, 'must be a valid IP address')
      else st.podIP = p.ip
    }
    const podIPs = list(raw.status, 'podIPs', 'status', errs).flatMap((v, i) => {
      const p = isRecord(v) && typeof v.ip === 'string' ? parseIP(v.ip) : null
      if (p === null) { errs.add(`status.podIPs[${i}].ip`, v, 'must be a valid IP address'); return [] }
      return [{ ip: p.ip }]
    })
    if (podIPs.length > 0) st.podIPs = podIPs
    const phase = str(raw.status, 'phase', 'status', errs)
    if (phase !== undefined) st.phase = phase
    pod.status = st
  }
  return pod
}

const VALIDATORS: Record<Kind, (raw: Raw, errs: FieldErrors) => KObject> = {
  Service: validateService, EndpointSlice: validateEndpointSlice, Node: validateNode, Pod: validatePod,
}

export function isKind (k: unknown): k is Kind {
  return typeof k === 'string' && Object.hasOwn(VALIDATORS, k)
}

/** Validates one decoded object. `origin` (a file, an etcd key) goes into the error for the user. */
export function validateObject (raw: unknown, origin?: string): KObject {
  const where = origin !== undefined ? ` (${origin})` : ''
  if (!isRecord(raw)) throw new FerryError('FERRY_ERR_INVALID_OBJECT', `object${where}: must be a mapping, got ${JSON.stringify(raw)}`, { origin })
  const kind = raw.kind
  if (!isKind(kind)) {
    throw new FerryError('FERRY_ERR_UNKNOWN_KIND', `object${where}: kind: unsupported kind ${JSON.stringify(kind)} (supported: ${Object.keys(VALIDATORS).join(', ')})`, { origin, kind })
  }
  const errs = new FieldErrors()
  if (raw.apiVersion !== API_VERSIONS[kind]) errs.add('apiVersion', raw.apiVersion, `must be "${API_VERSIONS[kind]}" for kind ${kind}`)
  const obj = VALIDATORS[kind](raw, errs)
  if (errs.list.length > 0) {
    const md = isRecord(raw.metadata) ? raw.metadata : {}
    const name = typeof md.name === 'string' ? md.name : '<unnamed>'
    const ns = typeof md.namespace === 'string' ? `${md.namespace}/` : (obj.metadata.namespace !== undefined ? `${obj.metadata.namespace}/` : '')
    throw new FerryError('FERRY_ERR_INVALID_OBJECT', `${kind} "${ns}${name}"${where}: ${errs.list.join('; ')}`,
      { origin, kind, namespace: obj.metadata.namespace, name, fields: errs.list })
  }
  return obj
}
