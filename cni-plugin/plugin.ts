// Real wiring for every verb but VERSION: loaded by main.ts with import() so VERSION never pays for it.
import { readFile } from 'node:fs/promises'
import { makeFuncs } from './commands.js'
import { IpDataplane } from './dataplane-ip.js'
import { openDiskIpam } from './ipam-disk.js'
import { dispatch, type Io } from './skel.js'

export async function runPlugin (io: Io): Promise<number> {
  const funcs = makeFuncs({
    dataplane: new IpDataplane(),
    openIpam: openDiskIpam,
    readFile: async (path) => await readFile(path, 'utf8'),
  })
  return await dispatch(funcs, io)
}
