// The test VM (test/vm/) has what the IPVS end-to-end tests need and this host's kernel lacks. One
// boot checks all of it: IPVS (programmed with ipvsadm, and its generic-netlink family resolved by
// node with the netlink package from the ferry tree at /ferry), dummy devices, iptables nat (legacy
// and nft), ipsets, network namespaces joined by veth, and real traffic through an IPVS virtual
// server to a backend in a namespace.
//
// Without root or qemu the test is skipped with the reason; FERRY_VM=1 turns that into a failure
// (for CI, where the VM suite must run), FERRY_VM=0 skips it on purpose.
import t from 'tap'
import { runInVM, vmAvailable } from '../vm/vm.js'

t.setTimeout(900_000) // the first run fetches the kernel and builds the image; boots are slow on a busy 2-core host

// Each check prints "@@ name" and then its output; the test asserts on each section.
const SCRIPT = String.raw`
set -u
sec() { echo "@@ $1"; }
sec ipvs-proc; cat /proc/net/ip_vs && echo present
sec ipvsadm
ipvsadm -A -t 10.0.0.1:80 -s rr && ipvsadm -a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 1 && ipvsadm -Ln; echo "rc=$?"
sec dummy
ip link add fy-dummy0 type dummy && ip addr add 10.0.0.1/32 dev fy-dummy0 && ip link set fy-dummy0 up && ip -o addr show dev fy-dummy0; echo "rc=$?"
sec genl
cd /ferry && node --input-type=module -e "
import nl from 'netlink'
const s = nl.createGenericNetlink()
const [f] = await s.ctrlRequest(3, { familyName: 'IPVS' })
console.log(JSON.stringify({ familyName: f.familyName, familyId: f.familyId, version: f.version, ops: f.ops.length }))
s.socket.close()
"; echo "rc=$?"; cd /
sec iptables-legacy
iptables-legacy -t nat -N FY-TEST && iptables-legacy -t nat -A FY-TEST -s 10.0.0.0/8 -m comment --comment fy-smoke -j MASQUERADE && iptables-legacy -t nat -S FY-TEST; echo "rc=$?"
sec iptables-nft
iptables-nft -t nat -N FY-TEST && iptables-nft -t nat -A FY-TEST -m addrtype --dst-type LOCAL -j MASQUERADE && iptables-nft -t nat -S FY-TEST; echo "rc=$?"
sec ipset
ipset create fy-set hash:ip,port && ipset add fy-set 10.0.0.2,tcp:8080 && ipset list fy-set; echo "rc=$?"
sec netns
ip netns add fy-b && ip link add fy-veth0 type veth peer name eth0 netns fy-b &&
ip addr add 10.0.0.254/24 dev fy-veth0 && ip link set fy-veth0 up &&
ip -n fy-b addr add 10.0.0.2/24 dev eth0 && ip -n fy-b link set eth0 up && ip -n fy-b link set lo up &&
ip -n fy-b route add default via 10.0.0.254 && ip netns list && ping -c 1 -W 5 10.0.0.2 >/dev/null && echo ping-ok; echo "rc=$?"
sec traffic
ip netns exec fy-b node -e "require('http').createServer((q, s) => s.end('backend fy-b')).listen(8080, '10.0.0.2')" &
srv=$!
for i in $(seq 1 50); do curl -s -m 2 http://10.0.0.2:8080/ >/dev/null && break; sleep 0.2; done
curl -s -m 5 http://10.0.0.1:80/; rc=$?; echo; echo "rc=$rc"
# Not --stats: its counters lag by up to 2 s (the kernel's estimator folds them in on a timer).
ipvsadm -Lnc | awk '$1 == "TCP" {print "entry", $4, $5, $6}'
kill "$srv"
ip netns del fy-b
sec files
cat /ferry/fy-extra/hello.txt /etc/fy-smoke.conf; grep '"name"' /ferry/package.json; ls /ferry/node_modules | grep -c -x -e tap -e typescript
sec end
`

function sections (output: string): Map<string, string> {
  const out = new Map<string, string>()
  let name = ''
  for (const line of output.split('\n')) {
    const m = /^@@ (\S+)$/.exec(line)
    if (m?.[1] !== undefined) {
      name = m[1]
      out.set(name, '')
    } else if (name !== '') {
      out.set(name, (out.get(name) ?? '') + line + '\n')
    }
  }
  return out
}

const avail = await vmAvailable()
if (!avail.ok && process.env.FERRY_VM === '1') t.fail(`FERRY_VM=1 but the VM is not available: ${avail.reason}`)
const skip = avail.ok ? false : `VM not available: ${avail.reason}`

t.test('the test VM has IPVS, dummy, iptables, ipset, netns and the ferry tree', { skip }, async t => {
  if (!avail.ok) return
  t.comment(avail.image.built ? `built the VM image in ${avail.image.buildMs} ms` : `VM image cached (built in ${avail.image.buildMs} ms): ${avail.image.dir}`)

  const files = { 'fy-extra/hello.txt': 'relative lands under /ferry\n', '/etc/fy-smoke.conf': 'absolute lands as is\n' }
  const r = await runInVM({ script: SCRIPT, files, timeoutMs: 240_000 })
  t.comment(`VM boot ${r.bootMs} ms, script ${r.runMs} ms`)
  t.equal(r.code, 0, 'the script exits 0')
  const s = sections(r.output)
  const sec = (name: string): string => s.get(name) ?? `(no section ${name}; output: ${r.output})`
  t.ok(s.has('end'), 'the script ran to its end')

  t.match(sec('ipvs-proc'), /^IP Virtual Server version [\d.]+ \(size=\d+\)$[\s\S]*^present$/m, '/proc/net/ip_vs exists: ip_vs is loaded')
  t.match(sec('ipvsadm'), /^TCP {2}10\.0\.0\.1:80 rr\s*$/m, 'ipvsadm -Ln lists the virtual server')
  t.match(sec('ipvsadm'), /^ {2}-> 10\.0\.0\.2:8080\s+Masq\s+1\s+0\s+0\s*$/m, '... with its masqueraded destination')
  t.match(sec('ipvsadm'), /^rc=0$/m)
  t.match(sec('dummy'), /fy-dummy0\s+inet 10\.0\.0\.1\/32 /, 'a dummy device takes a VIP')
  t.match(sec('dummy'), /^rc=0$/m)

  const genl = /^(\{.*\})$/m.exec(sec('genl'))?.[1]
  t.ok(genl, 'node printed the IPVS family')
  if (genl !== undefined) {
    const f = JSON.parse(genl) as { familyName: string, familyId: number, version: number, ops: number }
    t.equal(f.familyName, 'IPVS', 'node + netlink from /ferry/node_modules resolve the IPVS genl family')
    t.ok(f.familyId >= 16, `... with a dynamic family id (${f.familyId})`)
    t.ok(f.ops > 0, `... that offers operations (${f.ops})`)
  }
  t.match(sec('genl'), /^rc=0$/m)

  t.match(sec('iptables-legacy'), /^-A FY-TEST -s 10\.0\.0\.0\/8 -m comment --comment fy-smoke -j MASQUERADE$/m, 'iptables-legacy programs nat with comment and MASQUERADE')
  t.match(sec('iptables-legacy'), /^rc=0$/m)
  t.match(sec('iptables-nft'), /^-A FY-TEST -m addrtype --dst-type LOCAL -j MASQUERADE$/m, 'iptables-nft programs nat with addrtype')
  t.match(sec('iptables-nft'), /^rc=0$/m)
  t.match(sec('ipset'), /^Type: hash:ip,port$[\s\S]*^10\.0\.0\.2,tcp:8080$/m, 'ipset creates a hash:ip,port set and holds an entry')
  t.match(sec('ipset'), /^rc=0$/m)
  t.match(sec('netns'), /^fy-b\b/m, 'ip netns add works')
  t.match(sec('netns'), /^ping-ok$/m, 'a veth pair joins the namespace, and packets cross it')
  t.match(sec('netns'), /^rc=0$/m)
  t.match(sec('traffic'), /^backend fy-b$/m, 'a request to the virtual server reaches the backend in its namespace')
  t.match(sec('traffic'), /^rc=0$/m)
  t.equal(sec('files'), 'relative lands under /ferry\nabsolute lands as is\n  "name": "ferry",\n0\n',
    'extra files land under /ferry or at their absolute path; the tree has package.json and no dev dependencies')
  t.match(sec('traffic'), /^entry 10\.0\.0\.1:\d+ 10\.0\.0\.1:80 10\.0\.0\.2:8080$/m, 'its connection table holds client → VIP → backend')
})
