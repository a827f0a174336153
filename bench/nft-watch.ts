// Run inside a netns by bench/startup.ts: prints "ready" once subscribed to nf_tables' multicast group,
// then "landed" and exits when a committed change carries the given IPv4 address. It sees the kernel's
// own commit notifications, so an edit is timed to the commit without listing a big table (nft 1.0.6
// fetches every set for `list`, `get element` and `monitor`: 1.2 s and up at 10k Services).
//
//   ip netns exec NS node dist/bench/nft-watch.js 10.250.0.10
import netlink from 'netlink'

const NETLINK_NETFILTER = 12
const NFNLGRP_NFTABLES = 7

const ip = process.argv[2] ?? ''
const octets = ip.split('.').map(Number)
if (octets.length !== 4 || octets.some(o => !Number.isInteger(o) || o < 0 || o > 255)) {
  console.error(`usage: nft-watch IPv4-ADDRESS (got ${JSON.stringify(ip)})`)
  process.exit(2)
}
const needle = Buffer.from(octets)
const socket = new netlink.RawNetlinkSocket(NETLINK_NETFILTER)
socket.addMembership(NFNLGRP_NFTABLES)
socket.on('message', (msg: Buffer) => {
  if (msg.includes(needle)) {
    process.stdout.write('landed\n', () => process.exit(0))
  }
})
process.stdout.write('ready\n')
