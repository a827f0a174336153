// Hostile manifest inputs shared by the decoder, source and ferryd tests (findings 1 and 3 of issue 9).

/** A Service whose selector holds `levels` levels of `width` aliases: width^levels nodes once expanded. */
export function aliasBomb (levels = 10, width = 10): string {
  let anchors = 'x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n'
  for (let i = 1; i < levels; i++) anchors += `    x${i}: &a${i} [${Array(width).fill(`*a${i - 1}`).join(', ')}]\n`
  return `apiVersion: v1
kind: Service
metadata: {name: bomb, namespace: evil}
spec:
  clusterIP: 10.96.66.6
  ports: [{port: 80}]
  selector:
    ${anchors}`
}

/** One Service whose selector is a block mapping of `keys` entries (about 24 bytes each). */
export function bigSelectorService (keys: number, name = 'big'): string {
  const lines: string[] = []
  for (let i = 0; i < keys; i++) lines.push(`    key${i}: value${i}`)
  return `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: big}\nspec:\n  clusterIP: 10.96.77.7\n  ports: [{port: 80}]\n  selector:\n${lines.join('\n')}\n`
}
