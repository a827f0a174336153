// kubectl-style tables for `ferryctl get`. Pure: objects in, text out.
import type { EndpointSlice, KObject, Kind, Node, Pod, Service } from '../api/types.js'
import { qualifiedKind } from './kinds.js'

type Row = string[]

/** Left-aligned columns separated by three spaces, like kubectl's tabwriter output. */
export function renderTable (header: Row, rows: Row[]): string {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map(r => (r[i] ?? '').length)))
  return all.map(r => r.map((c, i) => i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3)).join('').trimEnd()).join('\n') + '\n'
}

const byBytes = (a: string, b: string): number => a < b ? -1 : a > b ? 1 : 0

/** kubectl clips the load-balancer part of EXTERNAL-IP to this many characters outside -o wide. */
const LOAD_BALANCER_WIDTH = 16

/**
 * A LoadBalancer's ingress addresses as kubectl shows them: each entry's IP, else its hostname, each
 * once, sorted, comma-separated; outside -o wide clipped to 16 characters, the last three "...".
 */
function loadBalancerAddresses (s: Service, wide: boolean): string {
  const found = (s.status?.loadBalancer?.ingress ?? []).map(i => i.ip !== undefined && i.ip !== '' ? i.ip : i.hostname ?? '')
  const text = [...new Set(found.filter(a => a !== ''))].sort(byBytes).join(',')
  return !wide && text.length > LOAD_BALANCER_WIDTH ? `${text.slice(0, LOAD_BALANCER_WIDTH - 3)}...` : text
}

/**
 * kubectl's EXTERNAL-IP: spec.externalIPs for ClusterIP and NodePort Services (their ingress is not
 * shown); for a LoadBalancer its ingress addresses first, then spec.externalIPs (never clipped), or
 * "<pending>" when it has neither; an ExternalName Service's name.
 */
function serviceExternalIP (s: Service, wide: boolean): string {
  const external = s.spec.externalIPs ?? []
  switch (s.spec.type) {
    case 'ClusterIP':
    case 'NodePort':
      return external.length > 0 ? external.join(',') : '<none>'
    case 'LoadBalancer': {
      const lb = loadBalancerAddresses(s, wide)
      if (external.length > 0) return [...(lb === '' ? [] : [lb]), ...external].join(',')
      return lb === '' ? '<pending>' : lb
    }
    case 'ExternalName':
      return s.spec.externalName ?? ''
  }
}

function serviceRow (s: Service, wide: boolean): Row {
  const sp = s.spec
  const clusterIP = sp.type === 'ExternalName' ? '<none>' : (sp.clusterIP ?? '') === '' ? '<none>' : sp.clusterIP ?? '<none>'
  const ports = sp.ports.map(p => `${p.port}${p.nodePort !== undefined ? `:${p.nodePort}` : ''}/${p.protocol}`).join(',')
  return [s.metadata.name, sp.type, clusterIP, serviceExternalIP(s, wide), ports === '' ? '<none>' : ports]
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

/** kubectl's labels.FormatLabels: k=v pairs in key order, comma-separated; "<none>" when there are none. */
export function formatLabels (labels: Readonly<Record<string, string>> | undefined): string {
  const keys = Object.keys(labels ?? {}).sort(byBytes)
  return keys.length === 0 ? '<none>' : keys.map(k => `${k}=${labels?.[k] ?? ''}`).join(',')
}

/** The first address of `type`, as kubectl's -o wide shows a node's INTERNAL-IP and EXTERNAL-IP. */
function nodeAddress (n: Node, type: string): string {
  return n.status?.addresses?.find(a => a.type === type)?.address ?? '<none>'
}

interface Columns { header: Row, wide: Row }

/**
 * Each kind's columns, and the ones kubectl's -o wide appends (its printers' priority-1 columns that
 * ferry's table does not already show). EndpointSlices have none in kubectl either.
 */
const COLUMNS: { readonly [K in Kind]: Columns } = {
  Service: { header: ['NAME', 'TYPE', 'CLUSTER-IP', 'EXTERNAL-IP', 'PORT(S)'], wide: ['SELECTOR'] },
  EndpointSlice: { header: ['NAME', 'ADDRESSTYPE', 'PORTS', 'ENDPOINTS'], wide: [] },
  Node: { header: ['NAME', 'INTERNAL-IP', 'POD-CIDRS'], wide: ['EXTERNAL-IP', 'OS-IMAGE', 'KERNEL-VERSION', 'CONTAINER-RUNTIME'] },
  Pod: { header: ['NAME', 'STATUS', 'IP', 'NODE'], wide: ['NOMINATED NODE', 'READINESS GATES'] },
}

/**
 * The -o wide cells. Ferry's objects keep only the fields the data plane reads, so a node's nodeInfo and
 * a pod's nominatedNodeName and readinessGates are never there: kubectl shows such empty fields as
 * "<unknown>" (nodeInfo) and "<none>" (the pod's).
 */
function wideCells (o: KObject): Row {
  switch (o.kind) {
    case 'Service': return [formatLabels(o.spec.selector)]
    case 'EndpointSlice': return []
    case 'Node': return [nodeAddress(o, 'ExternalIP'), '<unknown>', '<unknown>', '<unknown>']
    case 'Pod': return ['<none>', '<none>']
  }
}

function cells (o: KObject, wide: boolean): Row {
  switch (o.kind) {
    case 'Service': return serviceRow(o, wide)
    case 'EndpointSlice': return sliceRow(o)
    case 'Node': return nodeRow(o)
    case 'Pod': return podRow(o)
  }
}

export interface TableOptions {
  /** kubectl's -A: a NAMESPACE column first (not for cluster-scoped kinds). */
  withNamespace?: boolean
  /** kubectl's -o wide: the extra columns. */
  wide?: boolean
  /** NAME as `service/web`, as kubectl prints it when one get shows objects of several types. */
  withKind?: boolean
}

/**
 * A table of objects of one kind, in the order given: kubectl prints a list in the server's (key) order
 * and named objects in argument order.
 */
export function formatTable (kind: Kind, objects: readonly KObject[], opts: TableOptions = {}): string {
  const c = COLUMNS[kind]
  const ns = opts.withNamespace === true && kind !== 'Node'
  const rows = objects.map(o => {
    const r = opts.wide === true ? [...cells(o, true), ...wideCells(o)] : cells(o, false)
    if (opts.withKind === true) r[0] = `${qualifiedKind(o.kind)}/${r[0] ?? ''}`
    return ns ? [o.metadata.namespace ?? '', ...r] : r
  })
  const header = opts.wide === true ? [...c.header, ...c.wide] : c.header
  return renderTable(ns ? ['NAMESPACE', ...header] : header, rows)
}

/** `-o name`: one `<kind>/<name>` line per object (kind group-qualified, no namespace, as kubectl), in the order given. */
export function formatNames (objects: readonly KObject[]): string {
  return objects.map(o => `${qualifiedKind(o.kind)}/${o.metadata.name}\n`).join('')
}
