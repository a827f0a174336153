// The `yaml` package, loaded on first use: its ~70 modules cost ~0.1 s of start-up, and a ferryd fed
// JSON files (or etcd) never parses YAML. Loaded with require, which is synchronous like the decoder.
import { createRequire } from 'node:module'

export type YAML = typeof import('yaml')

let loaded: YAML | undefined

/** The yaml module; the first call loads it. */
export function yaml (): YAML {
  loaded ??= createRequire(import.meta.url)('yaml') as YAML
  return loaded
}
