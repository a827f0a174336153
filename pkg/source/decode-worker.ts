// Worker thread entry: reads and decodes manifest files, one at a time in the order sent, so a big or
// hostile file costs this thread's time and heap, never the daemon's event loop. The pool may queue the
// next files while one decodes; the chain keeps them from interleaving at the read's await.
import { parentPort } from 'node:worker_threads'
import { decodeManifests } from '../api/decode.js'
import { errorMessage, isFerryError } from '../errors/errors.js'
import { readManifestFile } from './manifest-files.js'
import type { DecodeJob, DecodeReply } from './decode-pool.js'

let chain: Promise<void> = Promise.resolve()
parentPort?.on('message', (job: DecodeJob) => {
  chain = chain.then(async () => {
    parentPort?.postMessage({ id: job.id, started: true })
    parentPort?.postMessage(await run(job))
  })
})

async function run (job: DecodeJob): Promise<DecodeReply> {
  try {
    const text = await readManifestFile(job.path, job.limits.maxBytes)
    const r = decodeManifests(text, job.origin, job.limits)
    const errors = r.errors.map(e => ({ code: e.code, message: e.message, details: { ...e.details } }))
    // A rejected file's objects are not used: do not pay for their text.
    return { id: job.id, objects: errors.length > 0 ? '[]' : JSON.stringify(r.objects), errors }
  } catch (e) {
    const err = isFerryError(e) ? { code: e.code, message: e.message, details: { ...e.details } } : { code: 'FERRY_ERR_SOURCE' as const, message: `manifests: cannot read ${job.path}: ${errorMessage(e)}`, details: { path: job.path } }
    return { id: job.id, objects: '[]', errors: [err], readFailed: !isFerryError(e) }
  }
}
