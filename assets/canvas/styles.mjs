// Builds the studio's stylesheet: Tailwind's CLI compiles tailwind.css into
// ../../studio/components/canvas_bundle/tailwind.css (minified unless FLOWLOOM_CANVAS_DEBUG).
// tailwind.css scans NiceGUI's sources in the project's .venv: without them Tailwind would
// quietly leave out the classes NiceGUI's and Quasar's elements draw, so the build stops here.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const output = join(here, '../../studio/components/canvas_bundle/tailwind.css')
const lib = join(here, '../../.venv/lib')

const nicegui = existsSync(lib)
  ? readdirSync(lib)
      .filter((name) => name.startsWith('python3'))
      .map((name) => join(lib, name, 'site-packages', 'nicegui', 'elements'))
      .find((dir) => existsSync(dir))
  : undefined
if (!nicegui) {
  console.error(
    `NiceGUI is not installed in ${join(here, '../../.venv')}: the studio's CSS needs its sources. ` +
      'Run `make venv` (or `make canvas`, which does it first).',
  )
  process.exit(1)
}

const args = ['--input', join(here, 'tailwind.css'), '--output', output]
if (!process.env.FLOWLOOM_CANVAS_DEBUG) args.push('--minify')
execFileSync(join(here, 'node_modules', '.bin', 'tailwindcss'), args, { cwd: here, stdio: 'inherit' })
