// One schema for flags and the YAML config file: parsed once at the edge, validated, then frozen.
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { parseArgs } from 'node:util'
import { FerryError, errorMessage } from '../errors/errors.js'
import { cidrContains, parseCIDR, parseIP, type IPFamily, type ParsedCIDR } from '../net/ip.js'
import { checkAccessSettings } from '../etcd/access.js'
import { parseEndpoint, redactEndpoint } from '../etcd/url.js'
import { yaml } from '../api/yaml.js'
import { formatHostPort, isDNSName, loopingUpstreams, parseHostPort, parseResolvConf, type HostPort } from './dns-addresses.js'

export type { HostPort } from './dns-addresses.js'

export type ProxyMode = 'auto' | 'iptables' | 'ipvs' | 'nftables'
/** Schedulers ferry accepts for --ipvs-scheduler (IPVS.md §1.5). */
export const IPVS_SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'mh'] as const
export type IpvsScheduler = typeof IPVS_SCHEDULERS[number]
export type IptablesVariant = 'auto' | 'legacy' | 'nft'
/** Pod records a-b-c-d.<ns>.pod.<zone>, as CoreDNS's `pods` option (DNS.md §2.7). */
export type DnsPodRecords = 'disabled' | 'insecure' | 'verified'
/** Where the default upstreams and search domains come from, unless loadConfig is told otherwise. */
export const RESOLV_CONF = '/etc/resolv.conf'
/** CoreDNS's forward takes at most 15 upstreams (DNS.md §4.1). */
export const MAX_DNS_UPSTREAMS = 15

export interface Config {
  readonly nodeName: string
  readonly manifests?: string
  /** Decoding limits for manifest files (pkg/api/limits.ts). */
  readonly manifestMaxFileSize: number
  readonly manifestMaxAliases: number
  readonly manifestMaxDepth: number
  readonly manifestMaxObjects: number
  readonly etcdEndpoints: readonly string[]
  readonly etcdPrefix: string
  /** TLS and login for etcd: paths only; the source reads them once at start-up (pkg/etcd/access.ts). */
  readonly etcdCAFile?: string
  readonly etcdCertFile?: string
  readonly etcdKeyFile?: string
  readonly etcdUsername?: string
  readonly etcdPasswordFile?: string
  readonly proxyMode: ProxyMode
  readonly iptablesVariant: IptablesVariant
  readonly ipvsScheduler: IpvsScheduler
  /** Longest a removed IPVS destination drains (weight 0) before it is deleted anyway. */
  readonly ipvsGracefulTerminationMs: number
  /** arp_ignore=1 / arp_announce=2, so this node does not answer ARP for the VIPs it binds. */
  readonly ipvsStrictARP: boolean
  readonly ipFamilies: readonly IPFamily[]
  /** Pod CIDRs, at most one per family (kube-proxy's comma-separated --cluster-cidr). */
  readonly clusterCIDRs: readonly string[]
  readonly httpListen: { readonly host: string, readonly port: number }
  /** Serve /debug/* to clients beyond loopback too. */
  readonly debugRemote: boolean
  readonly minSyncPeriodMs: number
  readonly syncPeriodMs: number
  readonly masqueradeAll: boolean
  readonly masqueradeBit: number
  readonly nodePortAddresses: readonly string[]
  readonly localhostNodePorts: boolean
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error'
  readonly logFormat: 'json' | 'text'
  readonly cleanup: boolean
  /** Addresses DNS serves on, UDP and TCP each; empty: DNS is off. */
  readonly dnsListen: readonly HostPort[]
  /** The cluster zone, lower-cased, without the trailing dot. */
  readonly clusterDomain: string
  /** Forwarder upstreams: --dns-upstream, else resolv.conf's nameservers (empty while DNS is off). */
  readonly dnsUpstreams: readonly HostPort[]
  /** resolv.conf's search domains, autopath's tail of the search list (empty unless autopath is on). */
  readonly dnsSearch: readonly string[]
  readonly dnsPodRecords: DnsPodRecords
  /** Seconds, on every cluster record except dns-version (CoreDNS `ttl`). */
  readonly dnsTTL: number
  /** Server-side search-path completion; needs dnsPodRecords 'verified'. */
  readonly dnsAutopath: boolean
  readonly dnsQueryLog: boolean
  /** Seconds; longest a forwarded answer is cached (0: not cached). */
  readonly dnsCacheMaxTTL: number
  /** Pod networking: a subnet lease, routes to the other nodes' subnets, the node file for ferry-cni. */
  readonly overlay: boolean
  /** The backend without etcd; with etcd the network config's Backend.Type decides. */
  readonly overlayBackend: OverlayBackend
  /** This node's pod subnets without etcd (at most one per family); the network is --cluster-cidr. */
  readonly podCIDRs: readonly string[]
  /** The uplink carrying overlay traffic (default: the default route's interface). */
  readonly overlayIface?: string
  /** This node's IPv4 address on the underlay (default: the uplink's first IPv4 address). */
  readonly publicIP?: string
  /** Dual-stack: this node's IPv6 address on the underlay (default: the uplink's first global IPv6 address). */
  readonly publicIPv6?: string
  readonly subnetFile: string
  /** FERRY_IPMASQ in the node file: ferry-cni masquerades traffic leaving the cluster network. */
  readonly ipMasq: boolean
  readonly subnetLeaseTTLMs: number
  readonly vxlanVNI: number
  readonly vxlanPort: number
  /** Where ferryd serves bin/ferry-cni's verbs (loopback only); undefined: off, every call starts node. */
  readonly cniListen?: HostPort
  /** Port and token of the CNI server, for bin/ferry-cni (mode 0600). */
  readonly cniServerFile: string
}

export type OverlayBackend = 'vxlan' | 'host-gw'

/** The overlay component's slice of the config. */
export type OverlayConfig = Pick<Config, 'overlay' | 'overlayBackend' | 'podCIDRs' | 'overlayIface' | 'publicIP' | 'publicIPv6' | 'subnetFile' | 'ipMasq' | 'subnetLeaseTTLMs' | 'vxlanVNI' | 'vxlanPort' | 'clusterCIDRs' | 'nodeName' | 'etcdEndpoints' | 'etcdPrefix' | 'etcdCAFile' | 'etcdCertFile' | 'etcdKeyFile' | 'etcdUsername' | 'etcdPasswordFile'>

/** The DNS component's slice of the config. */
export type DnsConfig = Pick<Config, 'dnsListen' | 'clusterDomain' | 'dnsUpstreams' | 'dnsSearch' | 'dnsPodRecords' | 'dnsTTL' | 'dnsAutopath' | 'dnsQueryLog' | 'dnsCacheMaxTTL'>

type Kind = 'string' | 'boolean' | 'list' | 'duration' | 'int' | 'bytes'
/** `arg` names the value in the usage text; list flags take A,B or repeat. */
interface Option { flag: string, key: keyof Config, kind: Kind, help: string, def?: string, file?: string, arg?: string }

/** The config-file key of an option: its flag in camelCase unless named. */
export function fileKey (o: Option): string {
  return o.file ?? o.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())
}

/** The whole schema: every flag, its config-file key, default and help text. */
export const OPTIONS: readonly Option[] = [
  { flag: 'node-name', key: 'nodeName', kind: 'string', help: 'this node\'s name; endpoints with this nodeName are local (default: hostname)' },
  { flag: 'manifests', key: 'manifests', kind: 'string', help: 'file or directory of Kubernetes YAML/JSON manifests to serve (the built-in default source; watched for changes)' },
  { flag: 'manifest-max-file-size', key: 'manifestMaxFileSize', kind: 'bytes', def: '16Mi', help: 'manifest files larger than this are ignored (with an error naming them) before they are read' },
  { flag: 'manifest-max-aliases', key: 'manifestMaxAliases', kind: 'int', def: '100', help: 'most YAML aliases per document, counting nested expansion' },
  { flag: 'manifest-max-depth', key: 'manifestMaxDepth', kind: 'int', def: '64', help: 'deepest nesting of mappings and lists in a manifest' },
  { flag: 'manifest-max-objects', key: 'manifestMaxObjects', kind: 'int', def: '100000', help: 'most objects (documents and List items) in one manifest file' },
  { flag: 'etcd-endpoints', key: 'etcdEndpoints', kind: 'list', help: 'comma-separated etcd URLs; when set, cluster state comes from etcd instead of manifests' },
  { flag: 'etcd-prefix', key: 'etcdPrefix', kind: 'string', def: '/ferry', help: 'etcd key prefix of ferry\'s objects' },
  { flag: 'etcd-cafile', key: 'etcdCAFile', kind: 'string', help: 'PEM CA bundle that signed etcd\'s server certificate (https:// endpoints; default: the system roots)' },
  { flag: 'etcd-certfile', key: 'etcdCertFile', kind: 'string', help: 'PEM client certificate for etcd --client-cert-auth (with --etcd-keyfile)' },
  { flag: 'etcd-keyfile', key: 'etcdKeyFile', kind: 'string', help: 'PEM private key of --etcd-certfile' },
  { flag: 'etcd-username', key: 'etcdUsername', kind: 'string', help: 'etcd user to log in as (with --etcd-password-file)' },
  { flag: 'etcd-password-file', key: 'etcdPasswordFile', kind: 'string', help: 'file holding the etcd password (one trailing newline ignored); never logged' },
  { flag: 'proxy-mode', key: 'proxyMode', kind: 'string', def: 'auto', help: 'auto | ipvs | nftables | iptables (auto picks IPVS where the kernel has it, else nftables where nft accepts ferry\'s layout, else iptables, and logs why)' },
  { flag: 'iptables-variant', key: 'iptablesVariant', kind: 'string', def: 'auto', help: 'auto | legacy | nft: which iptables backend to program' },
  { flag: 'ipvs-scheduler', key: 'ipvsScheduler', kind: 'string', def: 'rr', help: 'IPVS scheduler: rr | wrr | lc | wlc | sh | mh (the kernel must have ip_vs_<name>)' },
  { flag: 'ipvs-graceful-termination', key: 'ipvsGracefulTerminationMs', kind: 'duration', def: '15m', help: 'IPVS mode: a removed endpoint drains with weight 0 until its connections end, at most this long' },
  { flag: 'ipvs-strict-arp', key: 'ipvsStrictARP', kind: 'boolean', def: 'false', help: 'IPVS mode: set arp_ignore=1 and arp_announce=2 so the node never answers ARP for service VIPs (needed by MetalLB-style L2 load balancers)' },
  { flag: 'ip-families', key: 'ipFamilies', kind: 'list', def: 'IPv4', help: 'IP families to proxy: IPv4, IPv6 or IPv4,IPv6' },
  { flag: 'cluster-cidr', key: 'clusterCIDRs', kind: 'list', file: 'clusterCIDR', help: 'pod CIDR, one per family (10.244.0.0/16,fd00:10:244::/48); ClusterIP traffic from outside it is masqueraded' },
  { flag: 'http-listen', key: 'httpListen', kind: 'string', def: '127.0.0.1:10249', help: 'HOST:PORT for /metrics, /healthz, /livez, /readyz, /debug/state' },
  { flag: 'debug-remote', key: 'debugRemote', kind: 'boolean', def: 'false', help: 'serve /debug/state to clients beyond loopback too (it shows every Service and endpoint)' },
  { flag: 'min-sync-period', key: 'minSyncPeriodMs', kind: 'duration', def: '1s', help: 'minimum time between two rule syncs (changes in between coalesce)' },
  { flag: 'sync-period', key: 'syncPeriodMs', kind: 'duration', def: '30s', help: 'maximum time between two rule syncs; /healthz fails when a change waits 2x this' },
  { flag: 'masquerade-all', key: 'masqueradeAll', kind: 'boolean', def: 'false', help: 'masquerade all traffic to Service IPs' },
  { flag: 'masquerade-bit', key: 'masqueradeBit', kind: 'int', def: '14', help: 'fwmark bit (0-31) that marks packets for masquerade' },
  { flag: 'nodeport-addresses', key: 'nodePortAddresses', kind: 'list', help: 'CIDRs of local addresses that accept NodePorts (default: every local address)' },
  { flag: 'localhost-nodeports', key: 'localhostNodePorts', kind: 'boolean', def: 'false', help: 'accept NodePorts on 127.0.0.0/8 (off by default: CVE-2020-8558)' },
  { flag: 'log-level', key: 'logLevel', kind: 'string', def: 'info', help: 'debug | info | warn | error' },
  { flag: 'log-format', key: 'logFormat', kind: 'string', def: 'json', help: 'json | text' },
  { flag: 'cleanup', key: 'cleanup', kind: 'boolean', def: 'false', help: 'remove every rule ferry owns, then exit' },
  { flag: 'dns-listen', key: 'dnsListen', kind: 'list', arg: 'IP:PORT', help: 'serve cluster DNS (UDP and TCP) on this address, IPv6 as [::1]:53; repeat for more; none: DNS is off' },
  { flag: 'cluster-domain', key: 'clusterDomain', kind: 'string', def: 'cluster.local', help: 'the cluster\'s DNS zone' },
  { flag: 'dns-upstream', key: 'dnsUpstreams', kind: 'list', arg: 'IP[:PORT]', help: 'forward names outside the cluster zone here (port 53 unless given); repeat for more (default: the nameservers of /etc/resolv.conf)' },
  { flag: 'dns-pod-records', key: 'dnsPodRecords', kind: 'string', def: 'insecure', help: 'a-b-c-d.<ns>.pod.<zone> records: disabled | insecure (echo the IP) | verified (only IPs of pods in that namespace)' },
  { flag: 'dns-ttl', key: 'dnsTTL', kind: 'int', def: '5', help: 'TTL in seconds of cluster records (0-3600)' },
  { flag: 'dns-autopath', key: 'dnsAutopath', kind: 'boolean', def: 'false', help: 'complete pods\' search paths in the server, one round trip per name (needs --dns-pod-records verified)' },
  { flag: 'dns-query-log', key: 'dnsQueryLog', kind: 'boolean', def: 'false', help: 'log every DNS query and its answer\'s rcode' },
  { flag: 'overlay', key: 'overlay', kind: 'boolean', def: 'false', help: 'run pod networking: lease this node\'s pod subnet (etcd, or --pod-cidr), route to the other nodes\' subnets, write --subnet-file for ferry-cni' },
  { flag: 'overlay-backend', key: 'overlayBackend', kind: 'string', def: 'vxlan', help: 'vxlan | host-gw, without etcd (with etcd, the network config\'s Backend.Type decides)' },
  { flag: 'pod-cidr', key: 'podCIDRs', kind: 'list', file: 'podCIDR', help: 'without etcd: this node\'s pod subnet, one per family (the cluster network is --cluster-cidr)' },
  { flag: 'overlay-iface', key: 'overlayIface', kind: 'string', help: 'the uplink interface for overlay traffic (default: the default route\'s interface)' },
  { flag: 'public-ip', key: 'publicIP', kind: 'string', help: 'this node\'s IPv4 underlay address, published in its lease (default: the uplink\'s first IPv4 address)' },
  { flag: 'public-ipv6', key: 'publicIPv6', kind: 'string', help: 'dual-stack: this node\'s IPv6 underlay address, published in its lease, carrying IPv6 pod traffic (default: the uplink\'s first global IPv6 address)' },
  { flag: 'subnet-file', key: 'subnetFile', kind: 'string', def: '/run/ferry/subnet.env', help: 'the node file ferry-cni reads: network, subnet, MTU, masquerade' },
  { flag: 'ip-masq', key: 'ipMasq', kind: 'boolean', def: 'false', help: 'pods\' traffic leaving the cluster network is masqueraded (FERRY_IPMASQ in the node file)' },
  { flag: 'subnet-lease-ttl', key: 'subnetLeaseTTLMs', kind: 'duration', def: '24h', help: 'TTL of the subnet lease in etcd; renewed long before it runs out' },
  { flag: 'vxlan-vni', key: 'vxlanVNI', kind: 'int', def: '1', help: 'VXLAN network identifier without etcd' },
  { flag: 'vxlan-port', key: 'vxlanPort', kind: 'int', def: '8472', help: 'VXLAN UDP port without etcd' },
  { flag: 'cni-listen', key: 'cniListen', kind: 'string', def: '127.0.0.1:10251', arg: 'IP:PORT', help: 'serve bin/ferry-cni\'s verbs here so a CNI call starts no node (loopback only, IPv6 as [::1]:PORT; port 0: any free port; empty: off)' },
  { flag: 'cni-server-file', key: 'cniServerFile', kind: 'string', def: '/run/ferry/cni-server.env', help: 'where ferryd publishes the CNI server\'s address and token for bin/ferry-cni (mode 0600; removed on exit)' },
  { flag: 'dns-cache-max-ttl', key: 'dnsCacheMaxTTL', kind: 'int', def: '3600', help: 'longest time in seconds a forwarded answer is cached (0-86400; 0: no cache)' },
]

export const DEFAULT_MANIFESTS = '/etc/ferry/manifests'

export function usage (): string {
  const lines = OPTIONS.map(o => {
    const arg = o.kind === 'boolean' ? '' : ` ${o.arg ?? (o.kind === 'list' ? 'A,B' : o.kind === 'duration' ? 'DURATION' : o.kind === 'bytes' ? 'SIZE' : 'VALUE')}`
    return `  --${o.flag}${arg}\n      ${o.help}${o.def !== undefined ? ` (default ${o.def})` : ''}`
  })
  return [
    'usage: ferryd [--config FILE] [flags]',
    '',
    'ferryd programs Service rules for this node from Kubernetes manifests (default) or etcd.',
    'Flags override the YAML config file, whose keys are the flags in camelCase (nodeName, clusterCIDR, minSyncPeriod, ...).',
    '',
    '  --config FILE\n      YAML config file with the same settings',
    ...lines,
    '  --help\n      print this help',
  ].join('\n')
}

export function parseDuration (text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text.trim())
  if (m === null) return null
  const n = Number(m[1])
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h']
  return Math.round(n * unit)
}

/** "16Mi", "512Ki", "1GiB", "4096" → bytes. */
export function parseBytes (text: string): number | null {
  const m = /^(\d+)\s*(Ki|Mi|Gi)?B?$/.exec(text.trim())
  if (m === null) return null
  return Number(m[1]) * ({ Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] as 'Ki' | 'Mi' | 'Gi'] ?? 1)
}

function fail (where: string, msg: string): never {
  throw new FerryError('FERRY_ERR_CONFIG', `${where}: ${msg}`)
}

function coerce (o: Option, v: unknown, where: string): unknown {
  switch (o.kind) {
    case 'boolean':
      if (typeof v === 'boolean') return v
      if (v === 'true' || v === 'false') return v === 'true'
      return fail(where, `must be true or false, got ${JSON.stringify(v)}`)
    case 'int': {
      const n = typeof v === 'number' ? v : Number(v)
      if (!Number.isInteger(n)) fail(where, `must be an integer, got ${JSON.stringify(v)}`)
      return n
    }
    case 'duration': {
      const ms = typeof v === 'number' ? v * 1000 : typeof v === 'string' ? parseDuration(v) : null
      if (ms === null || ms <= 0) fail(where, `must be a duration like 500ms, 1s, 2m, got ${JSON.stringify(v)}`)
      return ms
    }
    case 'bytes': {
      const n = typeof v === 'number' ? v : typeof v === 'string' ? parseBytes(v) : null
      if (n === null || !Number.isInteger(n) || n <= 0) fail(where, `must be a size like 16Mi, 512Ki or 1048576, got ${JSON.stringify(v)}`)
      return n
    }
    case 'list': {
      // A repeated flag arrives as an array; each item may itself be comma-separated.
      const items = Array.isArray(v) ? v : typeof v === 'string' ? [v] : fail(where, 'must be a list')
      return items.flatMap(x => String(x).split(',')).map(x => x.trim()).filter(x => x !== '')
    }
    case 'string':
      if (typeof v !== 'string') fail(where, `must be a string, got ${JSON.stringify(v)}`)
      return v
  }
}

export interface LoadOptions {
  /** resolv.conf to read the default DNS upstreams and search domains from (default /etc/resolv.conf). */
  resolvConf?: string
}

/**
 * Parses argv (without node and script) and the optional config file into one frozen Config. Every file,
 * resolv.conf included, is read through `readFile`.
 */
export function loadConfig (argv: readonly string[], readFile: (p: string) => string = p => readFileSync(p, 'utf8'), opts: LoadOptions = {}): Config | 'help' {
  const parseOpts: Record<string, { type: 'string' | 'boolean', multiple?: boolean }> = { config: { type: 'string' }, help: { type: 'boolean' } }
  for (const o of OPTIONS) parseOpts[o.flag] = o.kind === 'boolean' ? { type: 'boolean' } : o.kind === 'list' ? { type: 'string', multiple: true } : { type: 'string' }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: [...argv], options: parseOpts, strict: true, allowPositionals: false })
  } catch (e) { return fail('flags', errorMessage(e)) }
  const flags = parsed.values as Record<string, string | string[] | boolean | undefined>
  if (flags.help === true) return 'help'

  const raw: Record<string, unknown> = {}
  for (const o of OPTIONS) if (o.def !== undefined) raw[o.key] = coerce(o, o.def, `default of --${o.flag}`)
  const file = flags.config
  if (typeof file === 'string') {
    let doc: unknown
    try { doc = yaml().parse(readFile(file)) } catch (e) { fail(`config file ${file}`, errorMessage(e)) }
    if (doc !== null && doc !== undefined) {
      if (typeof doc !== 'object' || Array.isArray(doc)) fail(`config file ${file}`, 'must be a mapping')
      for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
        const o = OPTIONS.find(x => fileKey(x) === k)
        if (o === undefined) fail(`config file ${file}`, `unknown key ${JSON.stringify(k)}`)
        raw[o.key] = coerce(o, v, `config file ${file}: ${k}`)
      }
    }
  }
  for (const o of OPTIONS) {
    const v = flags[o.flag]
    if (v !== undefined) raw[o.key] = coerce(o, v, `--${o.flag}`)
  }
  return Object.freeze(check(raw, readFile, opts.resolvConf ?? RESOLV_CONF))
}

function check (raw: Record<string, unknown>, readFile: (p: string) => string, resolvConf: string): Config {
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T => {
    const v = raw[key] as string
    if (!(allowed as readonly string[]).includes(v)) fail(key, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`)
    return v as T
  }
  const listen = String(raw.httpListen)
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(listen)
  const port = Number(m?.[2])
  if (m === null || port > 65535) fail('httpListen', `must be HOST:PORT, got ${JSON.stringify(listen)}`)
  const families = (raw.ipFamilies as string[]).map(f => {
    if (f !== 'IPv4' && f !== 'IPv6') fail('ipFamilies', `must be IPv4 and/or IPv6, got ${JSON.stringify(f)}`)
    return f
  })
  const clusterCIDRs = cidrsPerFamily('clusterCIDR', raw.clusterCIDRs)
  const nodePortAddresses = (raw.nodePortAddresses as string[] | undefined) ?? []
  for (const c of nodePortAddresses) if (parseCIDR(c) === null) fail('nodePortAddresses', `must be CIDRs, got ${JSON.stringify(c)}`)
  const bit = raw.masqueradeBit as number
  if (bit < 0 || bit > 31) fail('masqueradeBit', `must be 0-31, got ${bit}`)
  const etcdEndpoints = (raw.etcdEndpoints as string[] | undefined) ?? []
  if (etcdEndpoints.length > 0 && raw.manifests !== undefined) fail('flags', '--manifests and --etcd-endpoints are exclusive: pick one source')
  for (const e of etcdEndpoints) {
    try { parseEndpoint(e) } catch { fail('etcdEndpoints', `must be URLs like http://127.0.0.1:2379 or https://10.0.0.10:2379, got ${JSON.stringify(redactEndpoint(e))}`) }
  }
  const etcdFiles = { caFile: raw.etcdCAFile, certFile: raw.etcdCertFile, keyFile: raw.etcdKeyFile, username: raw.etcdUsername, passwordFile: raw.etcdPasswordFile } as Record<string, string | undefined>
  if (etcdEndpoints.length === 0 && Object.values(etcdFiles).some(v => v !== undefined)) {
    fail('flags', '--etcd-cafile, --etcd-certfile, --etcd-keyfile, --etcd-username and --etcd-password-file need --etcd-endpoints')
  }
  checkAccessSettings({ endpoints: etcdEndpoints, ...etcdFiles }) // URL shape, schemes, pairs; errors never show a password
  for (const k of ['manifestMaxAliases', 'manifestMaxDepth', 'manifestMaxObjects'] as const) {
    if ((raw[k] as number) < 1) fail(k, `must be at least 1, got ${String(raw[k])}`)
  }
  const minSync = raw.minSyncPeriodMs as number
  const sync = raw.syncPeriodMs as number
  if (minSync > sync) fail('minSyncPeriod', 'must not exceed syncPeriod')
  const nodeName = (raw.nodeName as string | undefined) ?? hostname()
  return {
    nodeName,
    ...(raw.manifests !== undefined ? { manifests: String(raw.manifests) } : {}),
    manifestMaxFileSize: raw.manifestMaxFileSize as number,
    manifestMaxAliases: raw.manifestMaxAliases as number,
    manifestMaxDepth: raw.manifestMaxDepth as number,
    manifestMaxObjects: raw.manifestMaxObjects as number,
    etcdEndpoints,
    etcdPrefix: String(raw.etcdPrefix),
    ...Object.fromEntries(['etcdCAFile', 'etcdCertFile', 'etcdKeyFile', 'etcdUsername', 'etcdPasswordFile'].filter(k => raw[k] !== undefined).map(k => [k, String(raw[k])])),
    proxyMode: oneOf('proxyMode', ['auto', 'iptables', 'ipvs', 'nftables'] as const),
    iptablesVariant: oneOf('iptablesVariant', ['auto', 'legacy', 'nft'] as const),
    ipvsScheduler: oneOf('ipvsScheduler', IPVS_SCHEDULERS),
    ipvsGracefulTerminationMs: raw.ipvsGracefulTerminationMs as number,
    ipvsStrictARP: raw.ipvsStrictARP as boolean,
    ipFamilies: families,
    clusterCIDRs,
    httpListen: { host: (m[1] ?? '').replace(/^\[|\]$/g, '') || '0.0.0.0', port },
    debugRemote: raw.debugRemote as boolean,
    minSyncPeriodMs: minSync,
    syncPeriodMs: sync,
    masqueradeAll: raw.masqueradeAll as boolean,
    masqueradeBit: bit,
    nodePortAddresses,
    localhostNodePorts: raw.localhostNodePorts as boolean,
    logLevel: oneOf('logLevel', ['debug', 'info', 'warn', 'error'] as const),
    logFormat: oneOf('logFormat', ['json', 'text'] as const),
    cleanup: raw.cleanup as boolean,
    ...checkDNS(raw, readFile, resolvConf),
    ...checkOverlay(raw, clusterCIDRs, etcdEndpoints.length > 0),
    ...checkCni(raw),
  }
}

/** The CNI server: loopback only, since anything that reaches it may ask for pod interfaces. */
function checkCni (raw: Record<string, unknown>): Pick<Config, 'cniListen' | 'cniServerFile'> {
  const text = String(raw.cniListen).trim()
  const cniServerFile = String(raw.cniServerFile)
  if (cniServerFile === '') fail('cniServerFile', 'must be a path')
  if (text === '') return { cniServerFile }
  const hp = parseHostPort(text)
  if (hp === null || !/:\d+$/.test(text)) fail('cniListen', `must be IP:PORT (IPv6 as [::1]:PORT) or empty, got ${JSON.stringify(text)}`)
  const loopback = hp.family === 'IPv4' ? hp.host.startsWith('127.') : hp.host === '::1'
  if (!loopback) fail('cniListen', `must be a loopback address (127.0.0.0/8 or ::1): any host that reaches it could ask for pod interfaces, got ${JSON.stringify(text)}`)
  return { cniListen: { host: hp.host, port: hp.port }, cniServerFile }
}

/** A CIDR list option, at most one per family, in canonical form; `each` checks every CIDR in turn. */
function cidrsPerFamily (key: string, list: unknown, each?: (c: ParsedCIDR) => void): string[] {
  const out: string[] = []
  const families = new Set<IPFamily>()
  for (const text of (list as string[] | undefined) ?? []) {
    const c = parseCIDR(text)
    if (c === null) fail(key, `must be a CIDR, got ${JSON.stringify(text)}`)
    if (families.has(c.family)) fail(key, `at most one ${c.family} CIDR, got ${JSON.stringify(text)} too`)
    families.add(c.family)
    each?.(c)
    out.push(c.text)
  }
  return out
}

type OverlaySettings = Pick<Config, 'overlay' | 'overlayBackend' | 'podCIDRs' | 'overlayIface' | 'publicIP' | 'publicIPv6' | 'subnetFile' | 'ipMasq' | 'subnetLeaseTTLMs' | 'vxlanVNI' | 'vxlanPort'>

/** The overlay flags: without etcd, each pod subnet must sit in the cluster CIDR of its family. */
function checkOverlay (raw: Record<string, unknown>, clusterCIDRs: readonly string[], etcd: boolean): OverlaySettings {
  const overlay = raw.overlay as boolean
  const backend = String(raw.overlayBackend)
  if (backend !== 'vxlan' && backend !== 'host-gw') fail('overlayBackend', `must be vxlan or host-gw, got ${JSON.stringify(backend)}`)
  const podCIDRs = cidrsPerFamily('podCIDR', raw.podCIDRs, c => {
    const net = clusterCIDRs.map(x => parseCIDR(x)).find(n => n?.family === c.family)
    if (overlay && !etcd && (net === undefined || net === null || net.prefix > c.prefix || !cidrContains(net, c.ip))) {
      fail('podCIDR', `${c.text} must lie inside the --cluster-cidr of its family (${net?.text ?? 'none given'})`)
    }
  })
  if (overlay && !etcd && podCIDRs.length === 0) fail('podCIDR', '--overlay without etcd needs --pod-cidr (this node\'s subnet) and --cluster-cidr (the network)')
  const publicIP = raw.publicIP === undefined ? undefined : String(raw.publicIP)
  // The lease's PublicIP is IPv4 (flannel's format, and decodeAttrs'); an IPv6 underlay address is PublicIPv6.
  if (publicIP !== undefined && parseIP(publicIP)?.family !== 'IPv4') fail('publicIP', `must be an IPv4 address (IPv6: --public-ipv6), got ${JSON.stringify(publicIP)}`)
  const publicIPv6 = raw.publicIPv6 === undefined ? undefined : String(raw.publicIPv6)
  if (publicIPv6 !== undefined && parseIP(publicIPv6)?.family !== 'IPv6') fail('publicIPv6', `must be an IPv6 address, got ${JSON.stringify(publicIPv6)}`)
  const vni = raw.vxlanVNI as number
  if (vni < 1 || vni > 16777215) fail('vxlanVNI', `must be 1-16777215, got ${vni}`)
  const vport = raw.vxlanPort as number
  if (vport < 1 || vport > 65535) fail('vxlanPort', `must be 1-65535, got ${vport}`)
  return {
    overlay,
    overlayBackend: backend,
    podCIDRs,
    ...(raw.overlayIface !== undefined ? { overlayIface: String(raw.overlayIface) } : {}),
    ...(publicIP !== undefined ? { publicIP } : {}),
    ...(publicIPv6 !== undefined ? { publicIPv6: parseIP(publicIPv6)?.ip ?? publicIPv6 } : {}),
    subnetFile: String(raw.subnetFile),
    ipMasq: raw.ipMasq as boolean,
    subnetLeaseTTLMs: raw.subnetLeaseTTLMs as number,
    vxlanVNI: vni,
    vxlanPort: vport,
  }
}

/** The DNS flags: addresses parsed, the zone checked, upstreams resolved from resolv.conf when not given. */
function checkDNS (raw: Record<string, unknown>, readFile: (p: string) => string, resolvConf: string): DnsConfig {
  const hostPorts = (key: string, defaultPort?: number): HostPort[] => ((raw[key] as string[] | undefined) ?? []).map(text => {
    const hp = parseHostPort(text, defaultPort)
    if (hp === null) fail(key === 'dnsListen' ? 'dnsListen' : 'dnsUpstream', `must be ${defaultPort === undefined ? 'IP:PORT' : 'IP or IP:PORT'} (IPv6 as [::1]:53), got ${JSON.stringify(text)}`)
    return { host: hp.host, port: hp.port }
  })
  const dnsListen = hostPorts('dnsListen')
  const podRecords = String(raw.dnsPodRecords)
  if (podRecords !== 'disabled' && podRecords !== 'insecure' && podRecords !== 'verified') fail('dnsPodRecords', `must be one of disabled, insecure, verified, got ${JSON.stringify(podRecords)}`)
  const autopath = raw.dnsAutopath as boolean
  // Autopath finds the client's namespace from its source IP: only the pod index can say (CoreDNS: `pods verified`).
  if (autopath && podRecords !== 'verified') fail('dnsAutopath', `needs --dns-pod-records verified, got ${podRecords}`)
  const domain = String(raw.clusterDomain).replace(/\.$/, '').toLowerCase()
  if (!isDNSName(domain)) fail('clusterDomain', `must be a DNS name like cluster.local, got ${JSON.stringify(raw.clusterDomain)}`)
  const ttl = raw.dnsTTL as number
  if (ttl < 0 || ttl > 3600) fail('dnsTTL', `must be 0-3600 seconds, got ${ttl}`)
  const cacheMax = raw.dnsCacheMaxTTL as number
  if (cacheMax < 0 || cacheMax > 86400) fail('dnsCacheMaxTTL', `must be 0-86400 seconds, got ${cacheMax}`)
  let upstreams = hostPorts('dnsUpstreams', 53)
  if (upstreams.length > MAX_DNS_UPSTREAMS) fail('dnsUpstream', `at most ${MAX_DNS_UPSTREAMS} upstreams, got ${upstreams.length}`)
  let search: string[] = []
  // resolv.conf is read only when DNS is on and needs it: a host without one can still run the proxy.
  if (dnsListen.length > 0 && (upstreams.length === 0 || autopath)) {
    let conf: ReturnType<typeof parseResolvConf>
    try { conf = parseResolvConf(readFile(resolvConf)) } catch (e) { fail(resolvConf, `${errorMessage(e)}; give --dns-upstream`) }
    if (autopath) search = conf.search.map(d => d.toLowerCase()).filter(isDNSName)
    if (upstreams.length === 0) {
      upstreams = conf.nameservers.flatMap(ns => { const hp = parseHostPort(ns, 53); return hp === null ? [] : [{ host: hp.host, port: 53 }] }).slice(0, MAX_DNS_UPSTREAMS)
      if (upstreams.length === 0) fail(resolvConf, 'lists no nameserver: give --dns-upstream')
    }
  }
  for (const { upstream: u, self } of loopingUpstreams(upstreams, dnsListen)) {
    fail('dnsUpstream', `${formatHostPort(u)} is this server (--dns-listen ${formatHostPort(self)}): forwarding to it would loop`)
  }
  return {
    dnsListen,
    clusterDomain: domain,
    dnsUpstreams: upstreams,
    dnsSearch: search,
    dnsPodRecords: podRecords,
    dnsTTL: ttl,
    dnsAutopath: autopath,
    dnsQueryLog: raw.dnsQueryLog as boolean,
    dnsCacheMaxTTL: cacheMax,
  }
}

