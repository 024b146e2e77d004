// What the canvas shares with the node and edge components it draws.
import { inject } from 'vue'

export const CANVAS = Symbol('flowloom-canvas')

/** The drag-and-drop data type of a palette entry (its value: the step's type name). */
export const DRAG_TYPE = 'application/x-flowloom-step'

/** The canvas's context: types, problems, statuses and the actions nodes may take. */
export function useCanvas() {
  return inject(CANVAS)
}

const CATEGORY_CLASSES = {
  Triggers: 'cat-triggers',
  AI: 'cat-ai',
  Logic: 'cat-logic',
  Data: 'cat-data',
  HTTP: 'cat-http',
  Flow: 'cat-flow',
  Human: 'cat-human',
  Notes: 'cat-notes',
}

/** The CSS class that colours a category's icons. */
export function categoryClass(category) {
  return CATEGORY_CLASSES[category] || 'cat-other'
}

/** "1.2 s", "340 ms", "2 min 5 s". */
export function formatDuration(seconds) {
  if (typeof seconds !== 'number' || Number.isNaN(seconds)) return ''
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`
}

/** "1,234 tokens". */
export function formatTokens(tokens) {
  if (typeof tokens !== 'number' || !tokens) return ''
  return `${tokens.toLocaleString('en-US')} token${tokens === 1 ? '' : 's'}`
}
