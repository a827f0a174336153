// Picks the state source from config: etcd when endpoints are given, else the manifest directory.
import type { Config } from '../config/config.js'
import { DEFAULT_MANIFESTS } from '../config/config.js'
import type { Logger } from '../log/log.js'
import { loadAccess } from './etcd-access.js'
import { EtcdSource } from './etcd.js'
import { ManifestSource } from './manifests.js'
import type { Source } from './source.js'

export function createSource (cfg: Config, log: Logger): Source {
  if (cfg.etcdEndpoints.length > 0) {
    // Reads the TLS and password files now, so a missing or unreadable one stops start-up with its name.
    const access = loadAccess({
      endpoints: cfg.etcdEndpoints, caFile: cfg.etcdCAFile, certFile: cfg.etcdCertFile, keyFile: cfg.etcdKeyFile,
      username: cfg.etcdUsername, passwordFile: cfg.etcdPasswordFile,
    })
    for (const w of access.warnings) log.warn(w, { endpoints: access.shown })
    return new EtcdSource({
      endpoints: [...cfg.etcdEndpoints],
      tls: access.tls,
      auth: access.auth,
      prefix: cfg.etcdPrefix,
      log: (level, msg, fields) => { log[level](msg, fields) },
    })
  }
  return new ManifestSource({ path: cfg.manifests ?? DEFAULT_MANIFESTS })
}
