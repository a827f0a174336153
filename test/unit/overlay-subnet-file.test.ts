import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { isFerryError } from '../../pkg/errors/errors.js'
import { parseCidr, type Cidr } from '../../pkg/net/cidr.js'
import {
  DEFAULT_SUBNET_FILE, parseSubnetFile, readSubnetFile, renderSubnetFile, subnetFileFor, writeSubnetFile,
} from '../../pkg/overlay/subnet-file.js'

function c (s: string): Cidr {
  const v = parseCidr(s)
  if (v === null) throw new Error(s)
  return v
}

const dir = mkdtempSync(join(tmpdir(), 'ferry-subnet-file-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

t.test('exactly the documented keys, gateway/prefix for the subnet', async t => {
  t.equal(DEFAULT_SUBNET_FILE, '/run/ferry/subnet.env')
  const v4 = subnetFileFor({ network: c('10.244.0.0/16'), subnet: c('10.244.1.0/24'), mtu: 1450, ipMasq: true })
  t.equal(renderSubnetFile(v4), 'FERRY_NETWORK=10.244.0.0/16\nFERRY_SUBNET=10.244.1.1/24\nFERRY_MTU=1450\nFERRY_IPMASQ=true\n')
  const dual = subnetFileFor({
    network: c('10.244.0.0/16'), subnet: c('10.244.1.0/24'), mtu: 1430, ipMasq: false,
    ipv6: { network: c('fd00:10:244::/56'), subnet: c('fd00:10:244:1::/64') },
  })
  t.equal(renderSubnetFile(dual), 'FERRY_NETWORK=10.244.0.0/16\nFERRY_SUBNET=10.244.1.1/24\nFERRY_MTU=1430\nFERRY_IPMASQ=false\n' +
    'FERRY_NETWORK_IPV6=fd00:10:244::/56\nFERRY_SUBNET_IPV6=fd00:10:244:1::1/64\n')
  t.same(parseSubnetFile(renderSubnetFile(dual)), dual, 'round trip')
})

t.test('atomic write: 0644 under any umask, no temp files, readers see whole files only', async t => {
  const path = join(dir, 'run/ferry/subnet.env')
  const a = subnetFileFor({ network: c('10.244.0.0/16'), subnet: c('10.244.1.0/24'), mtu: 1450, ipMasq: true })
  const b = subnetFileFor({ network: c('10.244.0.0/16'), subnet: c('10.244.2.0/24'), mtu: 1500, ipMasq: false })
  const old = process.umask(0o077)
  try { await writeSubnetFile(path, a) } finally { process.umask(old) }
  t.equal(statSync(path).mode & 0o777, 0o644)
  t.same(readSubnetFile(path), a)
  const texts = new Set([renderSubnetFile(a), renderSubnetFile(b)])
  let torn = 0
  let reads = 0
  let writing = true
  const reader = (async () => {
    while (writing) {
      if (!texts.has(readFileSync(path, 'utf8'))) torn++
      reads++
      await new Promise(resolve => setImmediate(resolve))
    }
  })()
  for (let i = 0; i < 100; i++) await writeSubnetFile(path, i % 2 === 0 ? b : a)
  writing = false
  await reader
  t.equal(torn, 0, `${reads} reads, none torn`)
  t.same(readdirSync(join(dir, 'run/ferry')), ['subnet.env'], 'no temp files left behind')
  t.same(readSubnetFile(path), a)
})

t.test('a failed write leaves the old file and no temp file', async t => {
  const path = join(dir, 'blocked/subnet.env')
  const good = subnetFileFor({ network: c('10.244.0.0/16'), subnet: c('10.244.1.0/24'), mtu: 1450, ipMasq: true })
  await writeSubnetFile(path, good)
  rmSync(path)
  writeFileSync(join(dir, 'blocked/x'), '')
  // a directory where the file should be: rename fails
  const { mkdirSync } = await import('node:fs')
  mkdirSync(path)
  await t.rejects(writeSubnetFile(path, good), { code: 'FERRY_ERR_APPLY' })
  t.same(readdirSync(join(dir, 'blocked')).sort(), ['subnet.env', 'x'])
})

t.test('parser: hand-written files, comments, errors name the key', async t => {
  t.same(parseSubnetFile('# by hand\nFERRY_NETWORK=10.244.0.0/16\n\nFERRY_SUBNET=10.244.9.1/24\nFERRY_MTU=1450\nFERRY_IPMASQ=false\nOTHER=1\n'),
    { network: '10.244.0.0/16', subnet: '10.244.9.1/24', mtu: 1450, ipMasq: false })
  const base = 'FERRY_NETWORK=10.244.0.0/16\nFERRY_SUBNET=10.244.1.1/24\nFERRY_MTU=1450\nFERRY_IPMASQ=true\n'
  const cases: Array<[string, string]> = [
    [base.replace('FERRY_MTU=1450\n', ''), 'FERRY_MTU'],
    [base.replace('1450', 'big'), 'FERRY_MTU'],
    [base.replace('1450', '40'), 'FERRY_MTU'],
    [base.replace('true', 'yes'), 'FERRY_IPMASQ'],
    [base.replace('10.244.1.1/24', '10.245.1.1/24'), 'FERRY_SUBNET'],
    [base.replace('10.244.0.0/16', '10.244.0.1/16'), 'FERRY_NETWORK'],
    [base.replace('10.244.1.1/24', '10.244.1.0/24'), 'FERRY_SUBNET'],
    [base + 'FERRY_NETWORK_IPV6=fd00::/56\n', 'FERRY_SUBNET_IPV6'],
    [base + 'FERRY_NETWORK_IPV6=10.0.0.0/8\nFERRY_SUBNET_IPV6=10.0.0.1/24\n', 'FERRY_NETWORK_IPV6'],
    [base + 'FERRY_MTU=1400\n', 'FERRY_MTU'],
    [base + 'garbage\n', 'line 5'],
  ]
  for (const [text, key] of cases) {
    try {
      parseSubnetFile(text, 'f')
      t.fail(`accepted: ${key}`)
    } catch (e) {
      t.ok(isFerryError(e, 'FERRY_ERR_PARSE'), key)
      t.match((e as Error).message, `f: ${key}:`)
    }
  }
  t.throws(() => readSubnetFile(join(dir, 'missing.env')), { code: 'FERRY_ERR_NOT_FOUND' })
})
