// Writes THIRD_PARTY_LICENSES.txt beside the bundle: every package the bundle is built from
// (the dependencies in package.json and theirs, including libraries that Vue Flow inlines
// into its own build) and `tailwindcss`, whose preflight and utilities are in the studio's
// tailwind.css, with its licence text. `vue` is not bundled: NiceGUI serves it.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const target = process.argv[2]
if (!target) throw new Error('usage: node licenses.mjs OUTPUT_FILE')

function packageDir(name, from) {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name)
    if (existsSync(join(candidate, 'package.json'))) return candidate
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (needed from ${from})`)
  }
}

const found = new Map()

function visit(name, from) {
  if (name === 'vue' || name.startsWith('@types/')) return
  const dir = packageDir(name, from)
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  const key = `${manifest.name}@${manifest.version}`
  if (found.has(key)) return
  const licenseFile = readdirSync(dir).find((file) => /^(licen[cs]e|copying)(\.|$)/i.test(file))
  found.set(key, {
    name: manifest.name,
    version: manifest.version,
    license: typeof manifest.license === 'string' ? manifest.license : manifest.license?.type || 'see text',
    text: licenseFile ? readFileSync(join(dir, licenseFile), 'utf8').trim() : '(the package ships no licence file)',
  })
  for (const dependency of Object.keys(manifest.dependencies || {})) visit(dependency, dir)
}

// build tools (devDependencies) whose own code ends up in what is shipped
const SHIPPED_BUILD_TOOLS = ['tailwindcss']

const own = JSON.parse(readFileSync(join(here, 'package.json'), 'utf8'))
for (const dependency of [...Object.keys(own.dependencies || {}), ...SHIPPED_BUILD_TOOLS]) {
  visit(dependency, here)
}

const entries = [...found.values()].sort((a, b) => a.name.localeCompare(b.name))
const text = [
  "Third-party software in the FlowLoom canvas bundle and the studio's stylesheet",
  '',
  ...entries.flatMap((e) => ['='.repeat(78), `${e.name} ${e.version} (${e.license})`, '-'.repeat(78), e.text, '']),
].join('\n')
writeFileSync(target, `${text}\n`)
console.log(`licences of ${entries.length} packages written to ${target}`)
