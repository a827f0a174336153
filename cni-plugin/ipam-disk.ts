// The one place ferry-cni opens the real IPAM store (pkg/ipam/disk.ts), so unit tests inject a fake.
export { openDiskIpam } from '../pkg/ipam/disk.js'
