// Polling until a condition holds: the one wait of the end-to-end tests (no timing is asserted by it).

export async function waitUntil (what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return
    await new Promise(resolve => setTimeout(resolve, 150))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`)
}
