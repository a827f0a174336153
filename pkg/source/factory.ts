// Picks the state source from config: etcd when endpoints are given, else the manifest directory.
import type { Config } from '../config/config.js'
import { DEFAULT_MANIFESTS } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { EtcdSource } from './etcd.js'
import { ManifestSource } from './manifests.js'
import type { Source } from './source.js'

export function createSource (cfg: Config, log: Logger): Source {
  if (cfg.etcdEndpoints.length > 0) {
    return new EtcdSource({
      endpoints: [...cfg.etcdEndpoints],
      prefix: cfg.etcdPrefix,
      log: (level, msg, fields) => { log[level](msg, fields) },
    })
  }
  return new ManifestSource({
    path: cfg.manifests ?? DEFAULT_MANIFESTS,
    limits: { maxBytes: cfg.manifestMaxFileSize, maxAliases: cfg.manifestMaxAliases, maxDepth: cfg.manifestMaxDepth, maxObjects: cfg.manifestMaxObjects },
  })
}
