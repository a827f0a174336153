// Whether this node holds state of the IPVS mode, answered without the netlink client: a start in
// another mode asks this every time, and loading the netlink package costs ~0.1 s of start-up.
import { access, readFile } from 'node:fs/promises'
import { DEFAULT_OWNERSHIP_PATH } from './ownership.js'
import { IPVS_DEVICE } from './vips.js'

const exists = async (path: string): Promise<boolean> => { try { await access(path); return true } catch { return false } }

/** Interface names in /proc/net/dev text (the netns of the reading thread). */
export function interfaceNames (procNetDev: string): string[] {
  const names: string[] = []
  for (const line of procNetDev.split('\n').slice(2)) {
    const colon = line.indexOf(':')
    if (colon > 0) names.push(line.slice(0, colon).trim())
  }
  return names
}

/** The ownership file or the ferry-ipvs0 device exists (so a switch to another mode must remove them). */
export async function ipvsModePresent (): Promise<boolean> {
  if (await exists(DEFAULT_OWNERSHIP_PATH)) return true
  let text: string | undefined
  try { text = await readFile('/proc/self/net/dev', 'utf8') } catch {}
  if (text !== undefined) return interfaceNames(text).includes(IPVS_DEVICE)
  const { openLinks } = await import('../../netlink/links.js')
  const links = openLinks()
  try { return await links.linkByName(IPVS_DEVICE) !== null } catch { return false } finally { links.close() }
}
