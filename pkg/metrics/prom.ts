// prom-client's metric classes without its index: `import 'prom-client'` also loads the push gateway,
// the cluster aggregator and the default process metrics (with @opentelemetry/api, ~50 modules), ~60 ms
// of start-up. Same classes, same module instances (require's cache), the package's own types.
// The default process metrics are loaded when collectDefaultMetrics is first called.
import { createRequire } from 'node:module'
import type * as Prom from 'prom-client'

const load = createRequire(import.meta.url)

export const Registry = load('prom-client/lib/registry') as typeof Prom.Registry
export const Counter = load('prom-client/lib/counter') as typeof Prom.Counter
export const Gauge = load('prom-client/lib/gauge') as typeof Prom.Gauge
export const Histogram = load('prom-client/lib/histogram') as typeof Prom.Histogram
export const exponentialBuckets = (load('prom-client/lib/bucketGenerators') as Pick<typeof Prom, 'exponentialBuckets'>).exponentialBuckets

export function collectDefaultMetrics (config?: Prom.DefaultMetricsCollectorConfiguration<Prom.RegistryContentType>): void {
  (load('prom-client/lib/defaultMetrics') as typeof Prom.collectDefaultMetrics)(config)
}

export type Registry<T extends Prom.RegistryContentType = Prom.PrometheusContentType> = Prom.Registry<T>
export type Counter<T extends string = string> = Prom.Counter<T>
export type Gauge<T extends string = string> = Prom.Gauge<T>
export type Histogram<T extends string = string> = Prom.Histogram<T>
