// The in-memory nftables model: the ferry dialect parses into typed rules, transactions apply whole or not
// at all, and every refusal the kernel makes (missing objects, busy chains and sets, changed values) is
// made here too, naming the line. Error texts follow nft 1.0.6 as observed on this machine.
import t, { type Test } from 'tap'
import { NftError, NftModel, tokenize } from '../../pkg/proxy/nftables/model.js'
import { parseRule, type NftRuleItem } from '../../pkg/proxy/nftables/model-rule.js'
import { FakeNft } from '../../pkg/proxy/nftables/fake-nft.js'

const BASE = `# ferry base, abridged
add table ip ferry
add chain ip ferry nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }
add chain ip ferry services
add chain ip ferry mark-for-masquerade
add rule ip ferry mark-for-masquerade meta mark set meta mark | 0x4000
add rule ip ferry nat-prerouting jump services
add map ip ferry service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
add rule ip ferry services ip daddr . meta l4proto . th dport vmap @service-ips
add map ip ferry vip-cluster-2 { typeof ip daddr . meta l4proto . th dport . numgen random mod 2 : ip daddr . th dport ; }
add chain ip ferry pick-vip-cluster-2
add rule ip ferry pick-vip-cluster-2 meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @vip-cluster-2
add chain ip ferry cip-cluster-2
add rule ip ferry cip-cluster-2 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
add rule ip ferry cip-cluster-2 goto pick-vip-cluster-2
add element ip ferry vip-cluster-2 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.5 . 8080, 10.96.0.10 . tcp . 80 . 1 : 10.244.1.6 . 8080 }
add element ip ferry service-ips { 10.96.0.10 . tcp . 80 : goto cip-cluster-2 }
add set ip ferry hairpin { type ipv4_addr . ipv4_addr ; }
add set ip ferry aff-0 { type ipv4_addr ; flags dynamic,timeout ; timeout 10800s ; }
add chain ip ferry ep-0
add rule ip ferry ep-0 update @aff-0 { ip saddr }
add rule ip ferry ep-0 meta l4proto tcp dnat ip to 10.244.1.5:8080
add chain ip ferry aff
add rule ip ferry aff ip saddr @aff-0 goto ep-0
add rule ip ferry aff numgen random mod 2 == 0 goto ep-0
`

function loaded (): NftModel {
  const m = new NftModel()
  m.apply(BASE)
  return m
}

const items = (text: string): NftRuleItem[] => [...parseRule(tokenize(text)).items]

t.test('tokenize keeps addresses whole and splits braces, commas and semicolons', async t => {
  t.same(tokenize('add element ip6 ferry m { fd00::1 . tcp . 80 : goto x, 1.2.3.4 . udp . 53 : drop } # c'),
    ['add', 'element', 'ip6', 'ferry', 'm', '{', 'fd00::1', '.', 'tcp', '.', '80', ':', 'goto', 'x', ',', '1.2.3.4', '.', 'udp', '.', '53', ':', 'drop', '}'])
  t.same(tokenize('{ type nat hook output priority -100; policy accept; }'), ['{', 'type', 'nat', 'hook', 'output', 'priority', '-100', ';', 'policy', 'accept', ';', '}'])
  t.same(tokenize('add rule ip ferry c comment "a b" drop'), ['add', 'rule', 'ip', 'ferry', 'c', 'comment', 'a b', 'drop'])
})

t.test('rules parse into the typed forms of the layout', async t => {
  const vip = [{ kind: 'addr', family: 'ip', dir: 'daddr' }, { kind: 'l4proto' }, { kind: 'dport', proto: 'th' }]
  const cases: Array<[string, unknown[]]> = [
    ['ip daddr . meta l4proto . th dport vmap @service-ips', [{ kind: 'vmap', key: vip, map: 'service-ips' }]],
    ['ct state new ip daddr . meta l4proto . th dport @firewall-ips drop', [{ kind: 'ct-state', negate: false, states: ['new'] },
      { kind: 'lookup', key: vip, negate: false, set: 'firewall-ips' }, { kind: 'verdict', verdict: { kind: 'drop' } }]],
    ['ct state invalid drop', [{ kind: 'ct-state', negate: false, states: ['invalid'] }, { kind: 'verdict', verdict: { kind: 'drop' } }]],
    ['fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports', [
      { kind: 'fib', dir: 'daddr', negate: false, type: 'local' }, { kind: 'cmp', key: { kind: 'addr', family: 'ip', dir: 'daddr' }, negate: true, value: '127.0.0.0/8' },
      { kind: 'vmap', key: [{ kind: 'l4proto' }, { kind: 'dport', proto: 'th' }], map: 'service-nodeports' }]],
    ['ip daddr 192.168.0.0/24 fib daddr type local meta l4proto . th dport vmap @np', [
      { kind: 'cmp', key: { kind: 'addr', family: 'ip', dir: 'daddr' }, negate: false, value: '192.168.0.0/24' },
      { kind: 'fib', dir: 'daddr', negate: false, type: 'local' }, { kind: 'vmap', key: [{ kind: 'l4proto' }, { kind: 'dport', proto: 'th' }], map: 'np' }]],
    ['ip saddr 1.2.3.4 goto ext-1', [{ kind: 'cmp', key: { kind: 'addr', family: 'ip', dir: 'saddr' }, negate: false, value: '1.2.3.4' },
      { kind: 'verdict', verdict: { kind: 'goto', chain: 'ext-1' } }]],
    ['fib saddr type local jump mark-for-masquerade', [{ kind: 'fib', dir: 'saddr', negate: false, type: 'local' },
      { kind: 'verdict', verdict: { kind: 'jump', chain: 'mark-for-masquerade' } }]],
    ['ct status dnat ip saddr . ip daddr @hairpin masquerade', [{ kind: 'ct-status', negate: false, statuses: ['dnat'] },
      { kind: 'lookup', key: [{ kind: 'addr', family: 'ip', dir: 'saddr' }, { kind: 'addr', family: 'ip', dir: 'daddr' }], negate: false, set: 'hairpin' },
      { kind: 'masquerade', fullyRandom: false }]],
    ['meta mark & 0x4000 == 0 return', [{ kind: 'mark', mask: 0x4000, negate: false, value: 0 }, { kind: 'verdict', verdict: { kind: 'return' } }]],
    ['meta mark & 0x00004000 == 0x00000000 return', [{ kind: 'mark', mask: 0x4000, negate: false, value: 0 }, { kind: 'verdict', verdict: { kind: 'return' } }]],
    ['meta mark set meta mark | 0x4000', [{ kind: 'mark-set', op: 'or', value: 0x4000 }]],
    ['meta mark set meta mark ^ 0x4000', [{ kind: 'mark-set', op: 'xor', value: 0x4000 }]],
    ['masquerade fully-random', [{ kind: 'masquerade', fullyRandom: true }]],
    ['reject', [{ kind: 'reject' }]],
    ['numgen random mod 3 == 0 goto ep-1', [{ kind: 'cmp', key: { kind: 'numgen', mod: 3 }, negate: false, value: '0' },
      { kind: 'verdict', verdict: { kind: 'goto', chain: 'ep-1' } }]],
    ['numgen random mod 3 0 goto ep-1', [{ kind: 'cmp', key: { kind: 'numgen', mod: 3 }, negate: false, value: '0' },
      { kind: 'verdict', verdict: { kind: 'goto', chain: 'ep-1' } }]],
    ['meta l4proto { tcp, udp, sctp } dnat ip to meta l4proto . th dport . numgen random mod 4 map @np-local-4', [
      { kind: 'anon-set', key: { kind: 'l4proto' }, negate: false, values: ['tcp', 'udp', 'sctp'] },
      { kind: 'dnat-map', key: [{ kind: 'l4proto' }, { kind: 'dport', proto: 'th' }, { kind: 'numgen', mod: 4 }], map: 'np-local-4' }]],
    ['meta l4proto tcp dnat ip to 10.244.1.5:8080', [{ kind: 'cmp', key: { kind: 'l4proto' }, negate: false, value: 'tcp' }, { kind: 'dnat', ip: '10.244.1.5', port: 8080 }]],
    ['meta l4proto udp dnat ip6 to [fd00::0:1]:53', [{ kind: 'cmp', key: { kind: 'l4proto' }, negate: false, value: 'udp' }, { kind: 'dnat', ip: 'fd00::1', port: 53 }]],
    ['update @aff-x-0 { ip6 saddr }', [{ kind: 'set-update', key: [{ kind: 'addr', family: 'ip6', dir: 'saddr' }], set: 'aff-x-0' }]],
    ['ip6 saddr != fd00::/8 jump mark-for-masquerade', [{ kind: 'cmp', key: { kind: 'addr', family: 'ip6', dir: 'saddr' }, negate: true, value: 'fd00::/8' },
      { kind: 'verdict', verdict: { kind: 'jump', chain: 'mark-for-masquerade' } }]],
    ['counter comment "ns/svc:p" goto x', [{ kind: 'counter' }, { kind: 'verdict', verdict: { kind: 'goto', chain: 'x' } }]],
  ]
  for (const [text, want] of cases) t.same(items(text), want, text)
  t.equal(parseRule(tokenize('comment "ns1/svc1:p80" drop')).comment, 'ns1/svc1:p80')
  for (const bad of ['ip daddr 10.0.0.300', 'tcp dport 70000', 'meta mark set meta mark & 1', 'ip daddr . th dport 80', 'snat to 1.2.3.4', 'ip6 saddr 1.2.3.4', 'numgen random mod 0 == 0']) {
    t.throws(() => parseRule(tokenize(bad)), `refused: ${bad}`)
  }
})

t.test('a transaction builds tables, chains with hooks, maps with canonical elements', async t => {
  const m = loaded()
  t.same(m.tables().map(x => `${x.family} ${x.name}`), ['ip ferry'])
  t.same(m.chain('ip', 'ferry', 'nat-prerouting')?.base, { type: 'nat', hook: 'prerouting', priority: -100, policy: 'accept' })
  t.equal(m.chain('ip', 'ferry', 'services')?.base, null)
  t.equal(m.chain('ip', 'ferry', 'services')?.rules.length, 1)
  t.same(m.set('ip', 'ferry', 'vip-cluster-2')?.keyTypes, ['ipv4_addr', 'inet_proto', 'inet_service', 'integer'])
  t.same(m.set('ip', 'ferry', 'vip-cluster-2')?.dataTypes, ['ipv4_addr', 'inet_service'])
  t.same(m.set('ip', 'ferry', 'aff-0')?.flags, ['dynamic', 'timeout'])
  t.same(m.elements('ip', 'ferry', 'vip-cluster-2'), ['10.96.0.10 . tcp . 80 . 0 : 10.244.1.5 . 8080', '10.96.0.10 . tcp . 80 . 1 : 10.244.1.6 . 8080'])
  t.same(m.elements('ip', 'ferry', 'service-ips'), ['10.96.0.10 . tcp . 80 : goto cip-cluster-2'])
  m.apply('add chain ip ferry c2 { type filter hook input priority filter + 5 ; }\nadd chain ip ferry c3 { type nat hook postrouting priority srcnat ; policy accept ; }')
  t.equal(m.chain('ip', 'ferry', 'c2')?.base?.priority, 5)
  t.equal(m.chain('ip', 'ferry', 'c3')?.base?.priority, 100)
  // Re-adding what exists is a no-op, as with the kernel; so is a re-added element with the same value.
  m.apply(BASE.split('\n').filter(l => !l.startsWith('add rule')).join('\n'))
  t.equal(m.chain('ip', 'ferry', 'services')?.rules.length, 1)
  m.apply('delete element ip ferry service-ips { 10.96.0.10 . tcp . 80 }\nadd element ip ferry service-ips { 10.96.0.10 . tcp . 80 : drop }')
  t.same(m.elements('ip', 'ferry', 'service-ips'), ['10.96.0.10 . tcp . 80 : drop'])
  m.apply('flush chain ip ferry cip-cluster-2\ndelete chain ip ferry cip-cluster-2')
  t.equal(m.chain('ip', 'ferry', 'cip-cluster-2'), undefined)
  t.match(m.listTable('ip', 'ferry'), /chain services \{\n\t\tip daddr \. meta l4proto \. th dport vmap @service-ips\n/)
})

t.test('IPv6 tables and elements', async t => {
  const m = new NftModel()
  m.apply(`add table ip6 ferry
add map ip6 ferry vip-cluster-1 { typeof ip6 daddr . meta l4proto . th dport . numgen random mod 1 : ip6 daddr . th dport ; }
add element ip6 ferry vip-cluster-1 { fd00:96::0010 . tcp . 80 . 0 : fd00::1 . 8080 }
add set ip6 ferry hairpin { type ipv6_addr . ipv6_addr ; }
add element ip6 ferry hairpin { fd00::1 . fd00::1 }`)
  t.same(m.elements('ip6', 'ferry', 'vip-cluster-1'), ['fd00:96::10 . tcp . 80 . 0 : fd00::1 . 8080'])
  t.throws(() => m.apply('add element ip6 ferry hairpin { 10.0.0.1 . 10.0.0.1 }'), /invalid data type/)
  t.equal(m.table('ip', 'ferry'), undefined)
})

/** Applies `text` to a loaded model; it must fail at `line` with `reason`, leaving the model as it was. */
function refused (t: Test, text: string, line: number, reason: RegExp): void {
  const m = loaded()
  const before = m.listTable('ip', 'ferry')
  let err: unknown
  try { m.apply(text) } catch (e) { err = e }
  t.ok(err instanceof NftError, `${text}: refused`)
  if (err instanceof NftError) {
    t.equal(err.line, line, `${text}: line`)
    t.match(err.reason, reason, `${text}: reason`)
    t.match(err.stderr(), new RegExp(`^/dev/stdin:${line}:`), 'nft-like stderr')
  }
  t.equal(m.listTable('ip', 'ferry'), before, `${text}: nothing applied`)
}

t.test('refusals leave the model unchanged and name the line', async t => {
  // Each transaction first makes a change, so a non-atomic apply would show.
  const first = 'add chain ip ferry new-one\nadd element ip ferry hairpin { 1.1.1.1 . 1.1.1.1 }\ndelete element ip ferry service-ips { 10.96.0.10 . tcp . 80 }\n'
  const cases: Array<[string, RegExp, string]> = [
    ['delete element ip ferry service-ips { 10.96.0.99 . tcp . 80 }', /No such file/, 'deleting a missing element'],
    ['delete element ip ferry hairpin { 1.1.1.1 . 1.1.1.1, 1.1.1.1 . 1.1.1.1 }', /No such file/, 'deleting one element twice'],
    ['delete chain ip ferry nosuch', /No such file/, 'deleting a missing chain'],
    ['delete set ip ferry nosuch', /No such file/, 'deleting a missing set'],
    ['delete map ip ferry nosuch', /No such file/, 'deleting a missing map'],
    ['flush chain ip ferry nosuch', /No such file/, 'flushing a missing chain'],
    ['add rule ip ferry nosuch drop', /No such file/, 'a rule in a missing chain'],
    ['add rule ip ferry services goto nosuch', /No such file/, 'a rule going to a missing chain'],
    ['add rule ip ferry services ip saddr @nosuch drop', /No such file/, 'a rule reading a missing set'],
    ['add rule ip ferry services ip saddr @hairpin drop', /datatype mismatch/, 'a lookup with the wrong key'],
    ['add element ip ferry nosuch { 1.2.3.4 }', /No such file/, 'an element in a missing map'],
    ['add element ip ferry service-ips { 10.96.0.11 . tcp . 80 : goto nosuch }', /No such file/, 'an element going to a missing chain'],
    ['add element ip ferry vip-cluster-2 { 10.96.0.10 . tcp . 80 . 0 : 10.244.1.9 . 8080 }', /File exists/, 'a key re-added with another value'],
    ['add element ip ferry service-ips { 10.96.0.11 . tcp : drop }', /invalid data type/, 'a short key'],
    ['add element ip ferry hairpin { 1.2.3.4 }', /invalid data type/, 'a set key of the wrong shape'],
    ['delete chain ip ferry mark-for-masquerade', /busy/, 'deleting a chain a rule jumps to'],
    ['delete chain ip ferry pick-vip-cluster-2', /busy/, 'deleting a chain a rule goes to'],
    ['delete set ip ferry aff-0', /busy/, 'deleting a set a rule updates'],
    ['delete map ip ferry vip-cluster-2', /busy/, 'deleting a map a dnat reads'],
    ['add set ip ferry hairpin { type ipv4_addr ; }', /File exists/, 'redeclaring a set with another type'],
    ['delete table ip nosuch', /No such file/, 'deleting a missing table'],
    ['add chain ip nosuch c', /No such file/, 'a chain in a missing table'],
    ['bogus stuff', /syntax error/, 'unknown syntax'],
    ['add rule ip ferry services ip daddr 10.0.0.1 frobnicate', /unexpected "frobnicate"/, 'an unknown statement'],
    ['add chain ip ferry x { type nat hook sideways priority 0 ; }', /unknown chain hook/, 'an unknown hook'],
  ]
  for (const [cmd, reason, name] of cases) t.test(name, async t => refused(t, first + cmd, 4, reason))
  t.test('deleting a chain a map element goes to', async t => {
    refused(t, first.replace('delete element ip ferry service-ips { 10.96.0.10 . tcp . 80 }\n', '# keep the element\n') +
      'flush chain ip ferry services\ndelete chain ip ferry cip-cluster-2', 5, /busy/)
  })
  t.test('an error on a late line after comments and blank lines', async t => refused(t, '# c\n\nadd chain ip ferry ok\n  # more\ndelete chain ip ferry gone', 5, /No such file/))
})

t.test('what the kernel allows in one transaction', async t => {
  const m = loaded()
  // The full-sync idiom: add + delete the table, then everything anew, atomically.
  m.apply('add table ip ferry\ndelete table ip ferry\nadd table ip ferry\nadd chain ip ferry only')
  t.same([...(m.table('ip', 'ferry')?.chains.keys() ?? [])], ['only'])
  // A chain whose last referrer is flushed earlier in the same transaction can go.
  const m2 = loaded()
  m2.apply('delete element ip ferry service-ips { 10.96.0.10 . tcp . 80 }\nflush chain ip ferry aff\ndelete chain ip ferry cip-cluster-2\ndelete chain ip ferry ep-0\ndelete set ip ferry aff-0')
  t.equal(m2.chain('ip', 'ferry', 'ep-0'), undefined)
  t.equal(m2.set('ip', 'ferry', 'aff-0'), undefined)
  // Deleting a chain with rules of its own is fine when nothing refers to it.
  m2.apply('delete chain ip ferry aff')
  m2.apply('flush ruleset')
  t.same(m2.tables(), [])
})

t.test('the fake nft binary', async t => {
  const other = async (): Promise<{ code: number, stdout: string, stderr: string }> => ({ code: 0, stdout: 'other', stderr: '' })
  const nft = new FakeNft(other)
  t.equal((await nft.exec(['nft', '-f', '-'], BASE)).code, 0)
  t.same(await nft.exec(['nft', 'list', 'tables']), { code: 0, stdout: 'table ip ferry\n', stderr: '' })
  const bad = await nft.exec(['nft', '-f', '-'], ['add chain ip ferry x\n', 'delete chain ip ferry nosuch\n'])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^\/dev\/stdin:2:1-\d+: Error: Could not process rule: No such file or directory\ndelete chain ip ferry nosuch\n/)
  t.equal(nft.model.chain('ip', 'ferry', 'x'), undefined, 'failed transaction left nothing')
  const check = await nft.exec(['nft', '-c', '-f', '-'], 'add chain ip ferry y')
  t.equal(check.code, 0)
  t.equal(nft.model.chain('ip', 'ferry', 'y'), undefined, '--check commits nothing')
  nft.failNext('add chain ip ferry z', 'Error: Could not process rule: Cannot allocate memory\n')
  const injected = await nft.exec(['nft', '-f', '-'], 'add chain ip ferry z')
  t.same([injected.code, injected.stderr], [1, 'Error: Could not process rule: Cannot allocate memory\n'])
  t.equal((await nft.exec(['nft', '-f', '-'], 'add chain ip ferry z')).code, 0, 'one-shot')
  t.match((await nft.exec(['nft', 'list', 'table', 'ip', 'ferry'])).stdout, /chain z \{/)
  t.equal((await nft.exec(['nft', 'list', 'table', 'ip6', 'ferry'])).code, 1)
  t.equal((await nft.exec(['nft', '-f', '-'], 'add set ip ferry probe { type ipv4_addr ; }\nadd element ip ferry probe { 10.0.0.1 }')).code, 0)
  t.match((await nft.exec(['nft', 'list', 'set', 'ip', 'ferry', 'probe'])).stdout, /set probe \{\n\t\telements = \{ 10\.0\.0\.1 \}/, 'list set shows one set')
  t.match(await nft.exec(['nft', 'list', 'set', 'ip6', 'ferry', 'probe']), { code: 1, stderr: /No such file or directory/ }, 'a missing table is ENOENT')
  t.equal((await nft.exec(['nft', 'delete', 'table', 'ip', 'ferry'])).code, 0)
  const again = await nft.exec(['nft', 'delete', 'table', 'ip', 'ferry'])
  t.same([again.code, again.stderr.includes('No such file or directory')], [1, true])
  t.same(await nft.exec(['nft', 'list', 'tables']), { code: 0, stdout: '', stderr: '' })
  t.equal((await nft.exec(['ip', 'link'])).stdout, 'other', 'other programs go to the fallback')
  t.match((await nft.exec(['nft', '--version'])).stdout, /^nftables v1\.0\.6/)
  t.same(nft.calls.map(c => c.argv.join(' ')).slice(0, 2), ['nft -f -', 'nft list tables'])
  t.equal(nft.calls[0]?.stdin, BASE)
})
