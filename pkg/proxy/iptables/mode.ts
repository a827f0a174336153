// Which iptables variant ferry programs. Both talk to the same netfilter hooks, but their rules live in
// different kernel tables: rules must never be split between them (PROXY.md §8.11), and the legacy
// backend restores large rulesets several times faster (bench/README.md), so ferry prefers legacy unless
// its chains already live in nft or the kernel lacks the legacy tables.
import type { IPFamily } from '../../net/ip.js'
import { spawnExec, type Exec } from '../../exec/exec.js'
import { toolName, type Variant } from './restore.js'

export interface VariantChoice { readonly variant: Variant, readonly reason: string }

export async function chooseVariant (family: IPFamily, exec: Exec = spawnExec): Promise<VariantChoice> {
  const nftSave = await tryExec(exec, [toolName('nft', family, 'save'), '-t', 'nat'])
  if (nftSave !== null && nftSave.code === 0 && /^:FERRY-/m.test(nftSave.stdout)) {
    return { variant: 'nft', reason: 'ferry chains already exist in the nft backend; staying there so rules are never split' }
  }
  const legacy = await tryExec(exec, [toolName('legacy', family, 'cmd'), '-w', '5', '-t', 'nat', '-S'])
  if (legacy !== null && legacy.code === 0) {
    return { variant: 'legacy', reason: 'kernel supports legacy iptables; legacy restores large rulesets faster' }
  }
  const why = legacy === null ? 'not installed' : legacy.stderr.trim().split('\n')[0] ?? `exit ${legacy.code}`
  return { variant: 'nft', reason: `legacy iptables unusable (${why})` }
}

async function tryExec (exec: Exec, argv: string[]): Promise<{ code: number, stdout: string, stderr: string } | null> {
  try {
    return await exec(argv)
  } catch {
    return null
  }
}
