// The node file ferry-cni reads, like flannel's subnet.env: the node's subnet, the cluster network, the MTU
// and whether to masquerade. Written atomically (temp file in the same directory, fsync, rename), so a
// CNI call never sees half a file; mode 0644. Exactly these keys, in this order:
//
//   FERRY_NETWORK=10.244.0.0/16
//   FERRY_SUBNET=10.244.1.1/24          gateway (the subnet's first address) / subnet prefix
//   FERRY_MTU=1450
//   FERRY_IPMASQ=true
//   FERRY_NETWORK_IPV6=fd00:10:244::/56 only when dual-stack (both or neither)
//   FERRY_SUBNET_IPV6=fd00:10:244:1::1/64
//
// Users and tests may write it by hand. ferryd and ferry-cni share parseSubnetFile, so a file one writes
// the other reads; this module's imports stay light (node builtins, pkg/net, pkg/errors) for ferry-cni.
import { open, mkdir, rename, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { dirname, basename, join } from 'node:path'
import { FerryError, errorMessage } from '../errors/errors.js'
import { containsCidr, offsetIP, parseCidr, type Cidr } from '../net/cidr.js'

export const DEFAULT_SUBNET_FILE = '/run/ferry/subnet.env'

export interface SubnetFile {
  /** Cluster network, "10.244.0.0/16". */
  readonly network: string
  /** Gateway/prefix of the node subnet, "10.244.1.1/24". */
  readonly subnet: string
  readonly mtu: number
  readonly ipMasq: boolean
  readonly networkIPv6?: string
  readonly subnetIPv6?: string
}

const KEYS = ['FERRY_NETWORK', 'FERRY_SUBNET', 'FERRY_MTU', 'FERRY_IPMASQ', 'FERRY_NETWORK_IPV6', 'FERRY_SUBNET_IPV6'] as const

/** "10.244.1.0/24" → "10.244.1.1/24": the gateway ferry-cni puts on the bridge, with the subnet's prefix. */
export function gatewayCidr (subnet: Cidr): string {
  return `${offsetIP(subnet, 1n)}/${subnet.prefix}`
}

export interface SubnetFileInput {
  network: Cidr
  subnet: Cidr
  mtu: number
  ipMasq: boolean
  ipv6?: { network: Cidr, subnet: Cidr } | undefined
}

/** The file's content from the node's lease(s); checks what a reader would reject. */
export function subnetFileFor (i: SubnetFileInput): SubnetFile {
  const f: SubnetFile = {
    network: i.network.text,
    subnet: gatewayCidr(i.subnet),
    mtu: i.mtu,
    ipMasq: i.ipMasq,
    ...(i.ipv6 !== undefined ? { networkIPv6: i.ipv6.network.text, subnetIPv6: gatewayCidr(i.ipv6.subnet) } : {}),
  }
  check(f, 'subnet file')
  return f
}

export function renderSubnetFile (f: SubnetFile): string {
  check(f, 'subnet file')
  let out = `FERRY_NETWORK=${f.network}\nFERRY_SUBNET=${f.subnet}\nFERRY_MTU=${f.mtu}\nFERRY_IPMASQ=${f.ipMasq ? 'true' : 'false'}\n`
  if (f.networkIPv6 !== undefined && f.subnetIPv6 !== undefined) out += `FERRY_NETWORK_IPV6=${f.networkIPv6}\nFERRY_SUBNET_IPV6=${f.subnetIPv6}\n`
  return out
}

/** Writes `f` to `path` atomically with mode 0644, creating the directory (0755) if needed. */
export async function writeSubnetFile (path: string, f: SubnetFile): Promise<void> {
  const text = renderSubnetFile(f)
  const dir = dirname(path)
  await mkdir(dir, { recursive: true, mode: 0o755 })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`)
  try {
    const fh = await open(tmp, 'wx', 0o644)
    try {
      await fh.writeFile(text)
      await fh.chmod(0o644) // the umask may have narrowed the mode given to open
      await fh.sync()
    } finally { await fh.close() }
    await rename(tmp, path)
  } catch (e) {
    await rm(tmp, { force: true })
    throw new FerryError('FERRY_ERR_APPLY', `subnet file ${path}: ${errorMessage(e)}`, { path }, { cause: e })
  }
}

/** Parses the file's text; `origin` names it in errors (FERRY_ERR_PARSE naming the key). Unknown keys are ignored. */
export function parseSubnetFile (text: string, origin = 'subnet file'): SubnetFile {
  const values = new Map<string, string>()
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const eq = line.indexOf('=')
    if (eq <= 0) fail(origin, `line ${n + 1}`, `want KEY=VALUE, got ${JSON.stringify(line)}`)
    const key = line.slice(0, eq).trim()
    if (!(KEYS as readonly string[]).includes(key)) continue
    if (values.has(key)) fail(origin, key, 'given twice')
    values.set(key, line.slice(eq + 1).trim())
  }
  const need = (k: string): string => {
    const v = values.get(k)
    if (v === undefined || v === '') fail(origin, k, `missing ${k}=<value>`)
    return v
  }
  const mtuText = need('FERRY_MTU')
  const masq = need('FERRY_IPMASQ')
  if (masq !== 'true' && masq !== 'false') fail(origin, 'FERRY_IPMASQ', `must be true or false, got ${JSON.stringify(masq)}`)
  if (!/^\d{1,5}$/.test(mtuText)) fail(origin, 'FERRY_MTU', `must be an integer, got ${JSON.stringify(mtuText)}`)
  const f: SubnetFile = {
    network: need('FERRY_NETWORK'),
    subnet: need('FERRY_SUBNET'),
    mtu: Number(mtuText),
    ipMasq: masq === 'true',
    ...(values.has('FERRY_NETWORK_IPV6') ? { networkIPv6: values.get('FERRY_NETWORK_IPV6') } : {}),
    ...(values.has('FERRY_SUBNET_IPV6') ? { subnetIPv6: values.get('FERRY_SUBNET_IPV6') } : {}),
  }
  check(f, origin)
  return f
}

export function readSubnetFile (path: string = DEFAULT_SUBNET_FILE): SubnetFile {
  let text: string
  try { text = readFileSync(path, 'utf8') } catch (e) {
    throw new FerryError('FERRY_ERR_NOT_FOUND', `subnet file ${path}: ${errorMessage(e)}`, { path })
  }
  return parseSubnetFile(text, `subnet file ${path}`)
}

function fail (origin: string, key: string, msg: string): never {
  throw new FerryError('FERRY_ERR_PARSE', `${origin}: ${key}: ${msg}`, { origin, key })
}

/** Network a CIDR of the family, subnet gateway/prefix inside it (not its network address), MTU in range, v6 pair complete. */
function check (f: SubnetFile, origin: string): void {
  pair(origin, 'FERRY_NETWORK', f.network, 'FERRY_SUBNET', f.subnet, 'IPv4')
  if (!Number.isInteger(f.mtu) || f.mtu < 68 || f.mtu > 65535) fail(origin, 'FERRY_MTU', `must be between 68 and 65535, got ${f.mtu}`)
  if ((f.networkIPv6 === undefined) !== (f.subnetIPv6 === undefined)) {
    fail(origin, f.networkIPv6 === undefined ? 'FERRY_NETWORK_IPV6' : 'FERRY_SUBNET_IPV6', 'FERRY_NETWORK_IPV6 and FERRY_SUBNET_IPV6 go together')
  }
  if (f.networkIPv6 !== undefined && f.subnetIPv6 !== undefined) pair(origin, 'FERRY_NETWORK_IPV6', f.networkIPv6, 'FERRY_SUBNET_IPV6', f.subnetIPv6, 'IPv6')
}

function pair (origin: string, nk: string, nv: string, sk: string, sv: string, family: 'IPv4' | 'IPv6'): void {
  const net = parseCidr(nv, { strict: true })
  if (net === null || net.family !== family) fail(origin, nk, `want an ${family} network CIDR, got ${JSON.stringify(nv)}`)
  const gw = parseCidr(sv)
  if (gw === null || gw.family !== family) fail(origin, sk, `want an ${family} gateway/prefix, got ${JSON.stringify(sv)}`)
  if (parseCidr(sv, { strict: true }) !== null) fail(origin, sk, `${sv} names the network address, not the gateway`)
  if (!containsCidr(net, gw)) fail(origin, sk, `${sv} is not inside ${nk} ${nv}`)
}
