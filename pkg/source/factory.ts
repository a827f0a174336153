// Picks the state source from config: etcd when endpoints are given, else the manifest directory.
// The etcd client (grpc, protobufjs) is loaded only when etcd is the source: a manifest-fed ferryd
// would otherwise spend a few hundred ms of its start-up compiling a client it never uses.
import type { Config } from '../config/config.js'
import { DEFAULT_MANIFESTS } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { loadAccess } from '../etcd/access.js'
import type { EtcdSourceOptions } from './etcd.js'
import { ManifestSource } from './manifests.js'
import type { Source, SourceHandler } from './source.js'

export function createSource (cfg: Config, log: Logger): Source {
  if (cfg.etcdEndpoints.length > 0) {
    // Reads the TLS and password files now, so a missing or unreadable one stops start-up with its name.
    const access = loadAccess({
      endpoints: cfg.etcdEndpoints, caFile: cfg.etcdCAFile, certFile: cfg.etcdCertFile, keyFile: cfg.etcdKeyFile,
      username: cfg.etcdUsername, passwordFile: cfg.etcdPasswordFile,
    })
    for (const w of access.warnings) log.warn(w, { endpoints: access.shown })
    return lazyEtcdSource(`etcd ${access.shown.join(',')}`, {
      endpoints: [...cfg.etcdEndpoints],
      tls: access.tls,
      auth: access.auth,
      prefix: cfg.etcdPrefix,
      log: (level, msg, fields) => { log[level](msg, fields) },
    })
  }
  return new ManifestSource({
    path: cfg.manifests ?? DEFAULT_MANIFESTS,
    limits: { maxBytes: cfg.manifestMaxFileSize, maxAliases: cfg.manifestMaxAliases, maxDepth: cfg.manifestMaxDepth, maxObjects: cfg.manifestMaxObjects },
    log: (msg, fields) => { log.debug(msg, fields) },
  })
}

/** An EtcdSource whose module (and the etcd client) is imported at start(). */
function lazyEtcdSource (name: string, opts: EtcdSourceOptions): Source {
  let inner: Source | undefined
  let stopped = false
  return {
    name,
    async start (handler: SourceHandler): Promise<void> {
      const { EtcdSource } = await import('./etcd.js')
      if (stopped) return
      inner = new EtcdSource(opts)
      await inner.start(handler)
    },
    async stop (): Promise<void> {
      stopped = true
      await inner?.stop()
    },
  }
}
