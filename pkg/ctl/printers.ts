// kubectl-style tables for `ferryctl get`. Pure: objects in, text out.
import type { EndpointSlice, KObject, Kind, Node, Pod, Service } from '../api/types.js'

type Row = string[]

/** Left-aligned columns separated by three spaces, like kubectl's tabwriter output. */
export function renderTable (header: Row, rows: Row[]): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map(r => (r[i] ?? '').length)))
  return all.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)).join('').trimEnd()).join('\n') + '\n'
}

function serviceRow (s: Service): Row {
  const sp = s.spec
  const clusterIP = sp.type === 'ExternalName' ? '<none>' : (sp.clusterIP ?? '') === '' ? '<none>' : sp.clusterIP ?? '<none>'
  const ingress = (s.status?.loadBalancer?.ingress ?? []).map(i => i.ip ?? i.hostname ?? '').filter(x => x !== '')
  const external = [...(sp.externalIPs ?? []), ...ingress]
  let ext: string
  if (sp.type === 'ExternalName') ext = sp.externalName ?? '<none>'
  else if (external.length > 0) ext = external.join(',')
  else ext = sp.type === 'LoadBalancer' ? '<pending>' : '<none>'
  const ports = sp.ports.map(p => `${p.port}${p.nodePort !== undefined ? `:${p.nodePort}` : ''}/${p.protocol}`).join(',')
  return [s.metadata.name, sp.type, clusterIP, ext, ports === '' ? '<none>' : ports]
}

function sliceRow (s: EndpointSlice): Row {
  const ports = s.ports.map(p => p.port !== undefined ? String(p.port) : '<unset>').join(',')
  const addrs = s.endpoints.flatMap(e => e.addresses)
  let eps = addrs.slice(0, 3).join(',')
  if (addrs.length > 3) eps += ` + ${addrs.length - 3} more...`
  return [s.metadata.name, s.addressType, ports === '' ? '<unset>' : ports, eps === '' ? '<unset>' : eps]
}

function nodeRow (n: Node): Row {
  const internal = (n.status?.addresses ?? []).filter(a => a.type === 'InternalIP').map(a => a.address).join(',')
  const cidrs = n.spec.podCIDRs ?? (n.spec.podCIDR !== undefined ? [n.spec.podCIDR] : [])
  return [n.metadata.name, internal === '' ? '<none>' : internal, cidrs.length === 0 ? '<none>' : cidrs.join(',')]
}

function podRow (p: Pod): Row {
  const ips = p.status?.podIPs?.map(x => x.ip) ?? (p.status?.podIP !== undefined ? [p.status.podIP] : [])
  return [p.metadata.name, p.status?.phase ?? '<unknown>', ips.length === 0 ? '<none>' : ips.join(','), p.spec.nodeName ?? '<none>']
}

const TABLES: { [K in Kind]: { header: Row, row: (o: never) => Row } } = {
  Service: { header: ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)'], row: serviceRow },
  EndpointSlice: { header: ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS'], row: sliceRow },
  Node: { header: ['NAME', 'INTERNAL-IP', 'POD-CIDRS'], row: nodeRow },
  Pod: { header: ['NAME', 'STATUS', 'IP', 'NODE'], row: podRow },
}

/** A table of objects of one kind; `withNamespace` adds kubectl's -A NAMESPACE column. */
export function formatTable (kind: Kind, objects: readonly KObject[], withNamespace: boolean): string {
  const t = TABLES[kind]
  const sorted = [...objects].sort((a, b) =>
    (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') || a.metadata.name.localeCompare(b.metadata.name))
  const rows = sorted.map(o => {
    const r = (t.row as (o: KObject) => Row)(o)
    return withNamespace && kind !== 'Node' ? [o.metadata.namespace ?? '', ...r] : r
  })
  return renderTable(withNamespace && kind !== 'Node' ? ['NAMESPACE', ...t.header] : t.header, rows)
}

// kubectl's -o name: the singular resource, qualified by its API group outside the core group.
const NAME_PREFIX: { [K in Kind]: string } = {
  Service: 'service', EndpointSlice: 'endpointslice.discovery.k8s.io', Node: 'node', Pod: 'pod',
}

/** `-o name`: one `<resource>/<name>` line per object, no namespace (as kubectl), in the order given. */
export function formatNames (objects: readonly KObject[]): string {
  return objects.map(o => `${NAME_PREFIX[o.kind]}/${o.metadata.name}\n`).join('')
}
