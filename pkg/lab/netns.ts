// Deleting a lab's namespaces: a delete that fails is retried once, and what is still left is an
// error naming it, so a lab never leaves a namespace behind in silence.
import type { Exec } from '../exec/exec.js'

/** Deletes each namespace in order; throws naming those that could not be deleted. */
export async function deleteNamespaces (exec: Exec, names: readonly string[]): Promise<void> {
  const left: string[] = []
  for (const ns of names) {
    let r = await exec(['ip', 'netns', 'delete', ns])
    if (r.code !== 0 && !gone(r.stderr)) {
      await new Promise(resolve => setTimeout(resolve, 200))
      r = await exec(['ip', 'netns', 'delete', ns])
    }
    if (r.code !== 0 && !gone(r.stderr)) left.push(`${ns} (${r.stderr.trim() || `exit ${r.code}`})`)
  }
  if (left.length > 0) throw new Error(`network namespaces left behind: ${left.join(', ')}`)
}

const gone = (stderr: string): boolean => /No such file/.test(stderr)
