// Worker thread entry: reads and decodes one manifest file per message, so a big or hostile file costs
// this thread's time and heap, never the daemon's event loop.
import { parentPort } from 'node:worker_threads'
import { decodeManifests } from '../api/decode.js'
import { readFailure, readManifestFile } from './manifest-files.js'
import type { DecodeJob, DecodeReply } from './decode-pool.js'

parentPort?.on('message', (job: DecodeJob) => {
  parentPort?.postMessage({ id: job.id, started: true })
  void run(job).then(reply => { parentPort?.postMessage(reply) })
})

async function run (job: DecodeJob): Promise<DecodeReply> {
  try {
    const text = await readManifestFile(job.path, job.limits.maxBytes)
    const r = decodeManifests(text, job.origin, job.limits)
    return { id: job.id, objects: r.objects, keys: r.keys, errors: r.errors.map(e => ({ code: e.code, message: e.message, details: { ...e.details } })) }
  } catch (e) {
    const err = readFailure(job.path, e)
    // Gone since its probe: the file keeps its last state, unreported.
    if (err === null) return { id: job.id, objects: [], keys: [], errors: [], readFailed: true }
    return { id: job.id, objects: [], keys: [], errors: [{ code: err.code, message: err.message, details: { ...err.details } }] }
  }
}
