// Ethernet (6-byte) MAC addresses in the text forms flannel's leases may hold. flannel decodes a lease's
// VtepMAC with Go's net.ParseMAC, which takes three notations, hex digits in any case:
//
//   aa:bb:cc:dd:ee:ff   aa-bb-cc-dd-ee-ff   aabb.ccdd.eeff
//
// one separator throughout. ParseMAC also takes 8- and 20-byte addresses (EUI-64, IPoIB); a VXLAN VTEP is
// an Ethernet device, so those are refused here, as is anything else.

const COLON = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i
const DASH = /^[0-9a-f]{2}(-[0-9a-f]{2}){5}$/i
const DOT = /^[0-9a-f]{4}(\.[0-9a-f]{4}){2}$/i

/** A 6-byte MAC in any of Go's notations → lower-case colon form (what the kernel and `ip` print); else null. */
export function parseMAC (text: string): string | null {
  let hex: string
  if (COLON.test(text) || DASH.test(text)) hex = text.replace(/[:-]/g, '')
  else if (DOT.test(text)) hex = text.replace(/\./g, '')
  else return null
  return hex.toLowerCase().replace(/(..)(?!$)/g, '$1:')
}
