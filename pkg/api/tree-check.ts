// Shape checks on a parsed tree before any further work: nesting depth, YAML aliases and duplicate
// mapping keys. Iterative, so hostile nesting cannot overflow the stack; linear in the node count.
import type { ErrorCode } from '../errors/errors.js'
import type { DecodeLimits } from './limits.js'
import { yaml } from './yaml.js'

export interface TreeProblem { readonly code: ErrorCode, readonly message: string }

/** null when `value` nests no deeper than the limit; else why not. */
export function checkJSONTree (value: unknown, limits: DecodeLimits): string | null {
  if (typeof value !== 'object' || value === null) return null
  // Two parallel stacks and for-in: no object or array allocated per node (every object at start-up
  // passes here).
  const nodes: object[] = [value]
  const depths: number[] = [0]
  for (let n = nodes.pop(); n !== undefined; n = nodes.pop()) {
    const depth = depths.pop() as number
    if (depth >= limits.maxDepth) return `nesting deeper than the limit of ${limits.maxDepth}`
    if (Array.isArray(n)) {
      for (const child of n as unknown[]) {
        if (typeof child === 'object' && child !== null) { nodes.push(child); depths.push(depth + 1) }
      }
    } else {
      const o = n as Record<string, unknown>
      for (const k in o) {
        const child = o[k]
        if (typeof child === 'object' && child !== null) { nodes.push(child); depths.push(depth + 1) }
      }
    }
  }
  return null
}

/** Checks a YAML document's contents: depth, alias count, and keys unique within each mapping. */
export function checkYAMLTree (root: unknown, limits: DecodeLimits, locate: (offset: number) => string = () => ''): TreeProblem | null {
  const { isAlias, isMap, isPair, isScalar, isSeq } = yaml()
  let aliases = 0
  const stack: Array<{ n: unknown, depth: number }> = [{ n: root, depth: 0 }]
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    const { n, depth } = top
    if (isAlias(n)) {
      if (++aliases > limits.maxAliases) return { code: 'FERRY_ERR_LIMIT', message: `more than ${limits.maxAliases} YAML aliases` }
      continue
    }
    if (!isMap(n) && !isSeq(n)) continue
    if (depth >= limits.maxDepth) return { code: 'FERRY_ERR_LIMIT', message: `nesting deeper than the limit of ${limits.maxDepth}` }
    if (isSeq(n)) {
      for (const item of n.items) stack.push({ n: item, depth: depth + 1 })
      continue
    }
    const keys = new Set<string>()
    for (const pair of n.items) {
      if (!isPair(pair)) continue
      if (isScalar(pair.key)) {
        const k = String(pair.key.value)
        if (keys.has(k)) return { code: 'FERRY_ERR_PARSE', message: `duplicate mapping key ${JSON.stringify(k.slice(0, 100))}${pair.key.range !== null && pair.key.range !== undefined ? locate(pair.key.range[0]) : ''}` }
        keys.add(k)
      } else stack.push({ n: pair.key, depth: depth + 1 })
      stack.push({ n: pair.value, depth: depth + 1 })
    }
  }
  return null
}
