// Undo steps for a lab run (the demo's namespaces, daemons, temp dirs), run newest first, once, whether
// the run ends, fails, or is interrupted with Ctrl-C.

export class Teardown {
  private readonly steps: Array<() => Promise<void>> = []
  private running: Promise<void> | undefined

  /** Registers an undo step; if teardown already began (Ctrl-C during set-up), runs it at once. */
  add (step: () => Promise<void>): void {
    if (this.running !== undefined) { void step().catch(report); return }
    this.steps.push(step)
  }

  /** Runs every step newest first, each even if an earlier one failed; later calls wait for the same run. */
  async run (): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) await step().catch(report)
    })()
    await this.running
  }

  /** Runs the teardown on SIGINT (then exits 0: Ctrl-C is how a kept run ends) and SIGTERM (then 143). */
  onSignals (): void {
    for (const [sig, code] of [['SIGINT', 0], ['SIGTERM', 143]] as const) {
      process.once(sig, () => { void this.run().then(() => process.exit(code)) })
    }
  }
}

function report (e: unknown): void {
  process.stderr.write(`teardown: ${e instanceof Error ? e.message : String(e)}\n`)
}
